#!/usr/bin/env bash
# Makes sure a local PostgreSQL is running and has the test database; installs it if missing.
# Prints the URL to use on success; exits non-zero if PostgreSQL cannot be made available.
set -uo pipefail
DB=${INTEGRATION_TEST_DB:-integration_test}
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) >&2 || true
  fi
fi
if command -v pg_lsclusters >/dev/null 2>&1; then
  if ! pg_lsclusters -h 2>/dev/null | grep -q online; then
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$version" ]; then
      pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
    fi
  fi
fi
for _ in $(seq 1 20); do
  if su postgres -c "psql -qAtc 'select 1'" >/dev/null 2>&1; then break; fi
  sleep 0.5
done
if ! su postgres -c "psql -qAtc 'select 1'" >/dev/null 2>&1; then
  echo "PostgreSQL is not reachable" >&2
  exit 1
fi
su postgres -c "psql -qAtc \"select 1 from pg_roles where rolname='integration'\"" | grep -q 1 \
  || su postgres -c "psql -qc \"create role integration login password 'integration' createdb\"" >&2
su postgres -c "psql -qAtc \"select 1 from pg_database where datname='$DB'\"" | grep -q 1 \
  || su postgres -c "createdb -O integration $DB" >&2
echo "postgresql+psycopg2://integration:integration@127.0.0.1:5432/$DB"
