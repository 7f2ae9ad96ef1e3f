#!/usr/bin/env bash
# The long form of the crash test (issue 20, ADR 0019): kills the dashboard process (SIGKILL) at KILLS
# seeded random moments of a whole fractal-server 2.16 -> 2.17.0 run plus at every aimed moment, and
# checks the run ends like an uninterrupted one (see tests/UpgradeConsole.Tests/Runs/CrashConsistencyTests.cs).
#   SEED=123 KILLS=20 scripts/crash-test.sh          one seed (printed by every run; replays exactly the same kill plan)
#   SEEDS="1 2 3" KILLS=20 scripts/crash-test.sh     several seeds in a row
#   AIMED=all|defects|none|<crash points, comma-separated>   (default all)
set -euo pipefail
cd "$(dirname "$0")/.."
kills="${KILLS:-20}"
aimed="${AIMED:-all}"
seeds="${SEEDS:-${SEED:-$(( (RANDOM << 15 | RANDOM) % 1000000 + 1 ))}}"
dotnet build tests/UpgradeConsole.Tests -v q -nologo
for seed in $seeds; do
  echo "== crash test: UC_CRASH_SEED=$seed UC_CRASH_KILLS=$kills UC_CRASH_AIMED=$aimed"
  UC_CRASH_SEED="$seed" UC_CRASH_KILLS="$kills" UC_CRASH_AIMED="$aimed" \
    dotnet test tests/UpgradeConsole.Tests --no-build \
      --filter "FullyQualifiedName~CrashConsistencyTests.AWholeRun_KilledAtSeededAndAimedMoments_EndsLikeAnUninterruptedRun" \
      --logger "console;verbosity=detailed"
done
