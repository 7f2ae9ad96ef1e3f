#!/usr/bin/env bash
# The Fractal users page (interactive MudDataGrid) with 10,010 users in Debian's Chromium: the first
# response, the first meaningful paint (navigation to the first rows), and each sort / filter / page
# round trip, median and p95. Starts its own PostgreSQL, sshd, dashboard and Chromium (the test rig),
# Release build. Not a test: it prints figures for the issue notes (goal: paint < 500 ms, p95 < 150 ms).
#   ./scripts/bench-users-grid.sh [generated users=10000]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dotnet run -c Release --project "$root/bench/UpgradeConsole.Benchmarks" -- users "${1:-10000}"
