#!/bin/sh
# Entrypoint of heady's local Postgres + pgvector image (hack/images.py). It keeps the contract of
# the official postgres image that charts/heady relies on: POSTGRES_USER / POSTGRES_PASSWORD /
# POSTGRES_DB create the owner and the database on first start, PGDATA says where the data lives,
# and *.sql files in /docker-entrypoint-initdb.d run once, in the new database. Runs as non-root
# on a read-only root filesystem: only PGDATA, /var/run/postgresql and /tmp are written.
set -eu
if [ "${1:-postgres}" != postgres ]; then
  exec "$@"
fi
[ "$#" -gt 0 ] && shift
: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
sock=/var/run/postgresql

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "heady postgres: POSTGRES_PASSWORD is required to initialise $PGDATA" >&2
    exit 1
  fi
  mkdir -p "$PGDATA"
  chmod 700 "$PGDATA"
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb -D "$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  # First start: Unix socket only, so nothing connects before the database exists.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses= -k $sock" -w start >/dev/null
  if [ "$POSTGRES_DB" != postgres ]; then
    psql -v ON_ERROR_STOP=1 -q -h "$sock" -U "$POSTGRES_USER" -d postgres \
      -c "CREATE DATABASE \"$POSTGRES_DB\""
  fi
  for f in /docker-entrypoint-initdb.d/*.sql; do
    [ -e "$f" ] || continue
    echo "heady postgres: running $f"
    psql -v ON_ERROR_STOP=1 -q -h "$sock" -U "$POSTGRES_USER" -d "$POSTGRES_DB" -f "$f"
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "heady postgres: initialised $PGDATA"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories="$sock" "$@"
