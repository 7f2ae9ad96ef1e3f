#!/usr/bin/env bash
# A rehearsal's overhead on the Fractal double (issue 18): the rehearsed phases (pip-install, set-db,
# update-db-data) against the phases that make and remove the copy (dump, restore, setup, cleanup), over R
# rehearsals started with `runs rehearse --wait`, on the double's users plus N generated ones, or on a real
# upstream dump (loaded with psql; e.g. ../shared/fixtures/fractal/clean_db_fractal_2.16.6.sql).
# Starts its own PostgreSQL, sshd and dashboard (the test rig), Release build. Not a test: prints figures.
#   ./scripts/bench-rehearsal-double.sh [generated users=10000] [rehearsals=3] [upstream dump]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dump=${3:-}
[ -z "$dump" ] || dump=$(cd "$(dirname "$dump")" && pwd)/$(basename "$dump")
dotnet run -c Release --project "$root/bench/UpgradeConsole.Benchmarks" -- rehearsal "${1:-10000}" "${2:-3}" ${dump:+"$dump"}
