#!/usr/bin/env bash
# Runs the Fractal host double's `fractalctl set-db` and `update-db-data` (version 2.17.0) on the real
# upstream 2.16.6 dump and compares the result with the real upstream 2.17.0 dump: tables, columns,
# types, constraints, and the user -> profile data of user_oauth, resource, profile, projectv2, taskgroupv2.
#   ./scripts/check-fractal-double.sh [dir with clean_db_fractal_2.16.6.sql, clean_db_fractal_2.17.0.sql, upstream-test.fractal_server.env.old]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
fixtures=${1:-$root/../shared/fixtures/fractal}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
dir=$(mktemp -d /tmp/uc-double-check-XXXXXX)
chmod 755 "$dir"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir "$dir/pg"; [ "$(id -u)" -eq 0 ] && chown postgres "$dir/pg"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() { as_pg "$bin/pg_ctl" -D "$dir/pg/data" stop -m immediate >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
as_pg "$bin/initdb" -D "$dir/pg/data" -U postgres -A trust >/dev/null
as_pg "$bin/pg_ctl" -D "$dir/pg/data" -w -o "-p $port -k $dir/pg -c listen_addresses=127.0.0.1" start >/dev/null
psql() { command psql -h 127.0.0.1 -p "$port" -U postgres -X -v ON_ERROR_STOP=1 -q "$@"; }
psql -c "CREATE DATABASE double" -c "CREATE DATABASE upstream"
psql -d double -f "$fixtures/clean_db_fractal_2.16.6.sql" >/dev/null
psql -d upstream -f "$fixtures/clean_db_fractal_2.17.0.sql" >/dev/null

# The double, installed the real way: wheel built here, real pip from a local directory.
work="$dir/fractal"; mkdir -p "$work"
/usr/bin/python3 "$root/tests/UpgradeConsole.Tests/FractalDouble/build_wheel.py" 2.17.0 "$dir/wheels" >/dev/null
/usr/bin/python3 -m venv "$dir/venv"
"$dir/venv/bin/pip" install -q --disable-pip-version-check --no-index --find-links "$dir/wheels" fractal-server==2.17.0
cp "$fixtures/upstream-test.fractal_server.env.old" "$work/.fractal_server.env.old"
cat > "$work/.fractal_server.env" <<ENV
JWT_SECRET_KEY=fake
POSTGRES_HOST=127.0.0.1
POSTGRES_PORT=$port
POSTGRES_USER=postgres
POSTGRES_DB=double
FRACTAL_DEFAULT_GROUP_NAME=All
ENV
(cd "$work" && "$dir/venv/bin/fractalctl" set-db && printf 'yes\nyes\nyes\nyes\nyes\n' | "$dir/venv/bin/fractalctl" update-db-data) | sed 's/^/  double: /'

compare() {
  local what=$1 query=$2
  if diff <(psql -d upstream -At -F ' | ' -c "$query") <(psql -d double -At -F ' | ' -c "$query") > "$dir/diff"; then
    echo "$what: identical"
  else
    echo "$what: DIFFERENT (< upstream 2.17.0, > double)"; cat "$dir/diff"; status=1
  fi
}
status=0
tables="'user_oauth','resource','profile','projectv2','taskgroupv2','alembic_version'"
compare "tables" "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name IN ($tables) ORDER BY 1"
compare "columns" "SELECT table_name, column_name, data_type, is_nullable, coalesce(column_default, '') FROM information_schema.columns WHERE table_schema = 'public' AND table_name IN ($tables) ORDER BY 1, 2"
compare "constraints" "SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text IN ($tables) ORDER BY 1, 2"
compare "alembic head" "SELECT version_num FROM alembic_version"
compare "users -> profiles" "SELECT u.id, u.email, u.is_active, u.is_verified, p.name, u.project_dir, u.slurm_accounts FROM user_oauth u LEFT JOIN profile p ON p.id = u.profile_id ORDER BY u.id"
compare "resource" "SELECT name, type, host, jobs_local_dir, jobs_runner_config, jobs_slurm_python_worker, jobs_poll_interval, tasks_local_dir, tasks_python_config, tasks_pixi_config FROM resource"
compare "profile" "SELECT p.name, p.resource_type, p.username, p.ssh_key_path, p.jobs_remote_dir, p.tasks_remote_dir, r.name FROM profile p JOIN resource r ON r.id = p.resource_id"
compare "project/task-group resources" "SELECT 'projectv2', count(*), count(resource_id) FROM projectv2 UNION ALL SELECT 'taskgroupv2', count(*), count(resource_id) FROM taskgroupv2"
exit $status
