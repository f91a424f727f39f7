# Sourced by ./test: a private PostgreSQL cluster on 127.0.0.1 for this run, installed from Debian's
# packages when missing. Exports TEST_POSTGRES_URL; the cluster is stopped when ./test exits.
set -euo pipefail
pg_bin=""
for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && pg_bin="$d"; done
if [ -z "$pg_bin" ]; then
  echo "==> installing Debian's postgresql (store and job tests on PostgreSQL)" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && pg_bin="$d"; done
fi
pg_dir="$(mktemp -d /tmp/access-desk-pg.XXXXXX)"
pg_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
pg_user="$(id -un)"
run_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
if [ "$(id -u)" = 0 ]; then chown postgres "$pg_dir"; pg_user=postgres; fi
run_pg "'$pg_bin/initdb' -D '$pg_dir/data' -U '$pg_user' -A trust >/dev/null"
run_pg "'$pg_bin/pg_ctl' -D '$pg_dir/data' -l '$pg_dir/log' -w -o \"-h 127.0.0.1 -p $pg_port -k '$pg_dir' -c fsync=off -c max_connections=200\" start >/dev/null"
stop_pg() { run_pg "'$pg_bin/pg_ctl' -D '$pg_dir/data' -m immediate stop >/dev/null 2>&1" || true; rm -rf "$pg_dir"; }
export TEST_POSTGRES_URL="postgresql+psycopg://$pg_user@127.0.0.1:$pg_port/postgres"
