#!/usr/bin/env bash
# Issue 16, fleet execution: one trivial step (`true`) and one 1,000-line step on 50 sshd hosts of 127.0.0.1, then on
# 200 (13 sshd × 16 ports: sshd listens on 16 sockets at most), side by side with parallel-ssh (-p 50) and Ansible (-f 50, shell module, pipelining on),
# cold (fresh connections) and warm (connections kept / ControlMaster up). The fleet of sshd hosts (throwaway keys,
# 127.0.0.1 only) is the test fixture SshFleet, started and stopped by the benchmark. Not a test: it prints medians,
# ratios to parallel-ssh (goals: ≤ 1.1× cold, ≤ 1.0× warm; the ratio must not grow with the host count), the memory
# of the process holding 50 (200) live host logs, and the machine's load, which the figures depend on.
#   ./scripts/bench-fleet.sh [rounds=3] [host counts="50 200"]
#   ANSIBLE=no ./scripts/bench-fleet.sh …   leaves Ansible out (it takes minutes a round at 200 hosts; the ratios are to parallel-ssh)
# Needs: openssh-server, pssh (parallel-ssh), ansible (Debian packages).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
config=${CONFIGURATION:-Release}
ansible=${ANSIBLE:-yes}
for tool in /usr/sbin/sshd $([ "$ansible" = no ] || echo ansible); do command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install openssh-server ansible pssh)" >&2; exit 1; }; done
command -v parallel-ssh >/dev/null || command -v pssh >/dev/null || { echo "missing parallel-ssh (apt-get install pssh)" >&2; exit 1; }
echo "load before: $(uptime)"
dotnet build -c "$config" "$root/bench/UpgradeConsole.Benchmarks" -v q -nologo >/dev/null
for hosts in ${2:-50 200}; do
  dotnet run --no-build -c "$config" --project "$root/bench/UpgradeConsole.Benchmarks" -- fleet "$hosts" 16 "${1:-3}" $([ "$ansible" = no ] && echo no-ansible)
done
echo "load after: $(uptime)"
