#!/usr/bin/env bash
# Server render time of the Fractal users page with 10,000 users (issue: Fractal preflight).
# Starts its own PostgreSQL, sshd and dashboard on 127.0.0.1 (the test rig), Release build.
#   ./scripts/bench-users.sh [users=10000]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dotnet run -c Release --project "$root/bench/UpgradeConsole.Benchmarks" -- users "${1:-10000}"
