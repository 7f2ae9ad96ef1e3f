#!/usr/bin/env bash
# Compares the project's own fractal-server 2.16 fixture (tests/UpgradeConsole.Tests/Fractal/
# fractal-2.16-schema.sql, written from shared/design/fractal-2.17.md) with a real upstream 2.16.6
# dump: every column (type, nullability, default) and constraint of the fixture's tables.
#   ./scripts/check-fractal-fixture.sh [path to clean_db_fractal_2.16.6.sql]
# Needs PostgreSQL's server binaries; starts a throwaway server on a free port and removes it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
upstream=${1:-$root/../shared/fixtures/fractal/clean_db_fractal_2.16.6.sql}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
dir=$(mktemp -d /tmp/uc-fixture-check-XXXXXX)
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() { as_pg "$bin/pg_ctl" -D "$dir/data" stop -m immediate >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust >/dev/null
as_pg "$bin/pg_ctl" -D "$dir/data" -w -o "-p $port -k $dir -c listen_addresses=''" start >/dev/null
psql() { command psql -h "$dir" -p "$port" -U postgres -v ON_ERROR_STOP=1 -q "$@"; }
psql -c "CREATE DATABASE upstream" -c "CREATE DATABASE ours"
psql -d upstream -f "$upstream" >/dev/null
psql -d ours -f "$root/tests/UpgradeConsole.Tests/Fractal/fractal-2.16-schema.sql" >/dev/null
tables=$(psql -d ours -At -c "SELECT string_agg(quote_literal(table_name), ',') FROM information_schema.tables WHERE table_schema = 'public'")
columns="SELECT table_name, column_name, data_type, is_nullable, coalesce(column_default, '') FROM information_schema.columns WHERE table_schema = 'public' AND table_name IN ($tables) ORDER BY 1, 2"
constraints="SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text IN ($tables) ORDER BY 1, 2"
diff <(psql -d upstream -At -F ' | ' -c "$columns") <(psql -d ours -At -F ' | ' -c "$columns") > "$dir/columns.diff" && echo "columns: identical in ours and upstream (for the fixture's tables)" || { echo "columns: differences (< upstream, > ours):"; cat "$dir/columns.diff"; }
diff <(psql -d upstream -At -F ' | ' -c "$constraints") <(psql -d ours -At -F ' | ' -c "$constraints") > "$dir/constraints.diff" && echo "constraints: identical" || { echo "constraints: differences (< upstream, > ours):"; cat "$dir/constraints.diff"; }
echo "alembic head: upstream $(psql -d upstream -At -c 'SELECT version_num FROM alembic_version'), ours $(psql -d ours -At -c 'SELECT version_num FROM alembic_version')"
