#!/usr/bin/env bash
# Issue 17, item 9: one preflight and one Fractal user PATCH through the API against a loopback Fractal host (the
# project's Fractal double on a real sshd of 127.0.0.1, its database on a real PostgreSQL; the test rig starts and
# stops both), Release build. Not a test: it prints median / p95 for the issue notes (goal: preflight < 2 s,
# PATCH < 300 ms) and the machine's load, which the figures depend on.
#   ./scripts/bench-target-ops.sh [rounds=20]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
echo "load before: $(uptime)"
dotnet run -c Release --project "$root/bench/UpgradeConsole.Benchmarks" -- target-ops "${1:-20}"
echo "load after: $(uptime)"
