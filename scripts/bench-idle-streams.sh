#!/usr/bin/env bash
# Security finding 4: the CPU that N idle SSE log streams cost the dashboard (a running run printing nothing),
# against the same window with no stream open. In-process dashboard on 127.0.0.1, Release build.
#   ./scripts/bench-idle-streams.sh [streams=40] [seconds=30]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dotnet run -c Release --project "$root/bench/UpgradeConsole.Benchmarks" -- idle-streams "${1:-40}" "${2:-30}"
