#!/usr/bin/env bash
# Adds a migration to both providers' migration sets (SQLite and PostgreSQL) after a model change.
#   scripts/add-migration.sh AddTargets
set -euo pipefail
name=${1:?usage: scripts/add-migration.sh MigrationName}
root=$(cd "$(dirname "$0")/.." && pwd)
project="$root/src/UpgradeConsole.Web"
cd "$root"
dotnet tool restore >/dev/null
# EfDesign=true brings in EF Core's design-time assembly (see the csproj for why it is not a normal reference).
dotnet build "$project" -p:EfDesign=true -nologo -v q
for flavour in Sqlite:SqliteAppDbContext PostgreSql:PostgresAppDbContext; do
  dir=${flavour%%:*}; context=${flavour##*:}
  dotnet ef migrations add "$name" --no-build --project "$project" --context "$context" \
    --output-dir "Persistence/Migrations/$dir" --namespace "UpgradeConsole.Web.Persistence.Migrations.$dir"
done
# Leave a normal build behind, without the design-time assembly.
dotnet build "$project" -nologo -v q
