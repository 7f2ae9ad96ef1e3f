#!/usr/bin/env bash
# Benchmarks the remote engine (issue: targets and the remote execution engine) against a real
# sshd on 127.0.0.1 with throwaway keys, started here and stopped on exit.
#   ./scripts/bench-remote.sh [lines=1000000]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d /tmp/uc-bench-sshd-XXXXXX)
user=${BENCH_USER:-$(id -un)}
if [ "$(id -u)" -eq 0 ]; then
  user=ucssh
  id -u "$user" >/dev/null 2>&1 || useradd -m -s /bin/bash "$user"
  usermod -p '*' "$user"
  mkdir -p /run/sshd
fi
cleanup() { [ -f "$dir/sshd.pid" ] && kill "$(cat "$dir/sshd.pid")" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
ssh-keygen -q -t ed25519 -N "" -f "$dir/host_key"
ssh-keygen -q -t ed25519 -N "" -f "$dir/client_key"
cp "$dir/client_key.pub" "$dir/authorized_keys"
chmod 755 "$dir"; chmod 644 "$dir/authorized_keys"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$dir/sshd_config" <<CFG
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
AllowUsers $user
StrictModes no
UsePAM no
PasswordAuthentication no
MaxSessions 64
CFG
/usr/sbin/sshd -f "$dir/sshd_config"
echo "[127.0.0.1]:$port $(cat "$dir/host_key.pub")" > "$dir/known_hosts"
sleep 0.3
dotnet run -c Release --project "$root/bench/UpgradeConsole.Benchmarks" -- remote 127.0.0.1 "$port" "$user" "$dir/client_key" "$dir/known_hosts" "${1:-1000000}"
