#!/usr/bin/env bash
# A rehearsal's overhead (issue 18): the phases that make and remove the copy (dump, restore into the scratch
# database, scratch venv and env files, cleanup) against the rehearsed phases alone (pip-install, set-db,
# update-db-data), over N rehearsals of a target, measured from the phases' own start and end times as the
# dashboard stored them. Needs a running dashboard and an Operator's token (the CLI's variables), and python3.
#   UPGRADECONSOLE_URL=… UPGRADECONSOLE_TOKEN=… ./scripts/bench-rehearsal.sh TARGET [runs=3] [runbook=fractal-2.16-to-2.17.0]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${1:?usage: bench-rehearsal.sh TARGET [runs] [runbook]}
runs=${2:-3}
runbook=${3:-fractal-2.16-to-2.17.0}
uc() { dotnet "$root/src/UpgradeConsole.Web/bin/Release/net10.0/UpgradeConsole.Web.dll" "$@"; }
[ -f "$root/src/UpgradeConsole.Web/bin/Release/net10.0/UpgradeConsole.Web.dll" ] || dotnet build -c Release "$root/src/UpgradeConsole.Web" -nologo -v q
ids=()
for i in $(seq 1 "$runs"); do
  out=$(uc runs rehearse --target "$target" --runbook "$runbook" --wait 2>/dev/null | head -n 1)
  ids+=("$(printf '%s' "$out" | sed -n 's/^Started rehearsal \([0-9]*\):.*/\1/p')")
done
for id in "${ids[@]}"; do
  curl -fsS -H "Authorization: Bearer $UPGRADECONSOLE_TOKEN" "$UPGRADECONSOLE_URL/api/v1/runs/$id"
  echo
done | python3 -c '
import json, sys, statistics
from datetime import datetime
rehearsed = {"pip-install", "set-db", "update-db-data"}
def secs(p):
    if not p["startedAt"] or not p["endedAt"]: return 0.0
    f = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))
    return (f(p["endedAt"]) - f(p["startedAt"])).total_seconds()
rows = []
for line in sys.stdin:
    if not line.strip(): continue
    run = json.loads(line)
    phases = {p["key"]: secs(p) for p in run["phases"]}
    inner = sum(v for k, v in phases.items() if k in rehearsed)
    overhead = sum(v for k, v in phases.items() if k.startswith("rehearsal-") and k != "rehearsal-compare")
    rows.append((run["id"], run["state"], inner, overhead, phases))
    rid, state = run["id"], run["state"]
    print(f"rehearsal {rid} {state}: rehearsed phases {inner:.1f} s, overhead {overhead:.1f} s  " +
          " ".join(f"{k}={v:.1f}" for k, v in phases.items()))
if rows:
    print(f"median: rehearsed phases {statistics.median(r[2] for r in rows):.1f} s, overhead (dump+restore+setup+cleanup) {statistics.median(r[3] for r in rows):.1f} s")
'
