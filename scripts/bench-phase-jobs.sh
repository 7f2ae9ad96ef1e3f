#!/usr/bin/env bash
# Hangfire's overhead on a run (issue 14): a 12-phase run of no-op phases, wall time from start to
# success, on SQLite and on a throwaway PostgreSQL (the test rig), Release build.
#   ./scripts/bench-phase-jobs.sh [runs=5]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dotnet run -c Release --project "$root/bench/UpgradeConsole.Benchmarks" -- phase-jobs "${1:-5}"
