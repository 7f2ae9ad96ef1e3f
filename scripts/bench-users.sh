#!/usr/bin/env bash
# The Fractal users page with 10,000 generated users: the server's first response, and (since the page is an
# interactive grid) the first meaningful paint and each sort / filter / page round trip in Chromium.
# Same program as ./scripts/bench-users-grid.sh. Starts its own PostgreSQL, sshd and dashboard (the test rig), Release build.
#   ./scripts/bench-users.sh [users=10000]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dotnet run -c Release --project "$root/bench/UpgradeConsole.Benchmarks" -- users "${1:-10000}"
