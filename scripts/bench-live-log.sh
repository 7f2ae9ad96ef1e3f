#!/usr/bin/env bash
# The live log pipeline (issue: live logs): a step printing N lines on a real sshd, followed, stored
# (SQLite; UC_BENCH_DATABASE=postgresql for a throwaway PostgreSQL) and pushed over SignalR to 5
# viewers running in a child process (UC_BENCH_VIEWERS=n to change, 0 for storage alone), after a
# warm-up run of 100,000 lines (UC_BENCH_WARMUP=n); then 2,000 lines/s for S seconds for latency.
# Prints the dashboard process's peak memory and CPU, and the viewers' process's.
# Starts its own sshd and dashboard on 127.0.0.1, Release build.
#   ./scripts/bench-live-log.sh [lines=1000000] [seconds=20]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dotnet run -c Release --project "$root/bench/UpgradeConsole.Benchmarks" -- live-log "${1:-1000000}" "${2:-20}"
