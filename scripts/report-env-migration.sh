#!/usr/bin/env bash
# What `env migrate --from 2.16 --to 2.17.0` does to each example env file in a directory
# (default: ../shared/fixtures/fractal, the fractal-containers examples and upstream's test file).
# Read only: the files are not written (no --write). Prints the diff, the reasons, and the exit code.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-../shared/fixtures/fractal}"
dotnet build src/UpgradeConsole.Web -c Release -v quiet -nologo >/dev/null
dll=src/UpgradeConsole.Web/bin/Release/net10.0/UpgradeConsole.Web.dll
find "$dir" -name '*fractal_server.env*' -type f | sort | while read -r f; do
  echo "=== ${f#"$dir"/}"
  before=$(sha256sum "$f" | cut -d' ' -f1)
  set +e
  dotnet "$dll" env migrate --from 2.16 --to 2.17.0 "$f"
  code=$?
  set -e
  after=$(sha256sum "$f" | cut -d' ' -f1)
  echo "exit $code; file $([ "$before" = "$after" ] && echo unchanged || echo CHANGED)"
done
