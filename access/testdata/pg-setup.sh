#!/usr/bin/env bash
# Installs (if missing) and starts a local PostgreSQL listening on 127.0.0.1
# only, and creates the backgate role and the backgate_test database
# idempotently. Run as root. Prints the DSN to export for the access tests:
#   export BACKGATE_TEST_POSTGRES_DSN=$(bash access/testdata/pg-setup.sh | tail -1)
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
port=${PGPORT:-5432}

apt_retry() {
  for i in $(seq 1 30); do
    if "$@"; then return 0; fi
    echo "pg-setup: apt busy or failed (try $i), retrying in 5s" >&2
    sleep 5
  done
  return 1
}

if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  echo "pg-setup: installing postgresql" >&2
  apt_retry apt-get update -qq >&2
  apt_retry apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
bin=/usr/lib/postgresql/$ver/bin

if command -v pg_lsclusters >/dev/null 2>&1; then
  if ! pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main"' | grep -q .; then
    pg_createcluster "$ver" main -p "$port" >&2
  fi
  conf=/etc/postgresql/$ver/main/postgresql.conf
  sed -i "s/^#\?listen_addresses.*/listen_addresses = '127.0.0.1'/" "$conf"
  sed -i "s/^#\?port = .*/port = $port/" "$conf"
  if ! pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main" {print $4}' | grep -q online; then
    pg_ctlcluster "$ver" main start >&2
  fi
else
  data=/var/lib/postgresql/backgate-data
  if [ ! -s "$data/PG_VERSION" ]; then
    install -d -o postgres -g postgres "$data"
    pw=$(mktemp); echo postgres >"$pw"; chown postgres "$pw"
    su postgres -c "$bin/initdb -D $data --auth-host=scram-sha-256 --auth-local=peer --pwfile=$pw" >&2
    rm -f "$pw"
  fi
  if ! su postgres -c "$bin/pg_ctl -D $data status" >/dev/null 2>&1; then
    su postgres -c "$bin/pg_ctl -D $data -l $data/log -w -o \"-c listen_addresses=127.0.0.1 -p $port\" start" >&2
  fi
fi

for i in $(seq 1 30); do
  if su postgres -c "psql -p $port -qAtc 'select 1'" >/dev/null 2>&1; then break; fi
  sleep 1
done

su postgres -c "psql -p $port -v ON_ERROR_STOP=1 -qAt" >&2 <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'backgate') THEN
    CREATE ROLE backgate LOGIN PASSWORD 'backgate';
  END IF;
END
$$;
SQL
if ! su postgres -c "psql -p $port -qAtc \"select 1 from pg_database where datname = 'backgate_test'\"" | grep -q 1; then
  su postgres -c "createdb -p $port -O backgate backgate_test" >&2
fi
echo "postgres://backgate:backgate@127.0.0.1:$port/backgate_test?sslmode=disable"
