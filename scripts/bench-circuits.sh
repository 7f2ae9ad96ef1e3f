#!/usr/bin/env bash
# Server memory per open circuit (issue 13): 1, 10 and 25 Chromium tabs on a run page, idle and then following
# a live log of 2,000 lines/s from a paced step on a real sshd; the managed heap and resident set of the
# dashboard's process per tab, and the emission → frame latency measured in every tab (p50, p99).
# Starts its own sshd, dashboard (SQLite) and Debian's Chromium, Release build. Not a test: prints figures.
#   ./scripts/bench-circuits.sh ["1 10 25"] [seconds of live log per row=10] [--trace] [--nice-tabs]
# --nice-tabs: Chromium at nice 10 once the tabs are open (the tabs stand for viewers on machines of their own).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dotnet run -c Release --project "$root/bench/UpgradeConsole.Benchmarks" -- circuits "${1:-1 10 25}" "${2:-10}" "${@:3}"
