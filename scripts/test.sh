#!/usr/bin/env bash
# The test command. On a fresh Debian machine it installs what the tests drive for real
# (PostgreSQL, OpenSSH server and client, Chromium, Python venv, aiosmtpd), then runs the whole suite.
# Nothing is mocked: the tests start their own PostgreSQL, sshd and headless Chromium on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
command -v ssh-keyscan >/dev/null 2>&1 || missing+=(openssh-client)
[ -x /usr/bin/chromium ] || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v setsid >/dev/null 2>&1 || missing+=(util-linux)
command -v sudo >/dev/null 2>&1 || missing+=(sudo)
command -v pkill >/dev/null 2>&1 || missing+=(procps)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c "import ensurepip" 2>/dev/null || missing+=(python3-venv)
# The notification tests' real SMTP server.
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c "import aiosmtpd" 2>/dev/null || missing+=(python3-aiosmtpd)

if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi

dotnet --info >/dev/null
dotnet tool restore >/dev/null
# The run's output is kept so that its last lines name the tests that failed (a CI log shows only its tail).
log="$(mktemp -t uc-test-XXXXXX.log)"
set +e
dotnet test UpgradeConsole.sln --logger "console;verbosity=normal" "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
  echo "Tests that failed:"
  grep -E '^\s+Failed [A-Za-z]' "$log" | sed -E 's/^\s+//' | sort -u || echo "(none named: the run itself failed; see above)"
  # And why: each failure's message and the first lines of its stack (a CI log keeps only its tail).
  awk '/^[[:space:]]+Failed [A-Za-z]/ { n = 14 } n > 0 { print; n-- }' "$log" | cut -c1-300
fi
rm -f "$log"
exit "$status"
