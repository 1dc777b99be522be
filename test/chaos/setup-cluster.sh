#!/usr/bin/env bash
# Creates (if missing) and starts the PostgreSQL 15 cluster the chaos suite may restart:
# cluster `chaos` on port 5440, trust auth for local and 127.0.0.1, max_connections 200,
# database `nexus_chaos`. Idempotent; run as root (Debian's postgresql-common tools).
# Prints the connection string for NEXUS_CHAOS_DATABASE_URL on its last line.
# With --fresh, drops and recreates the database first (a run starts from no migrations).
set -euo pipefail

FRESH=0
if [ "${1:-}" = "--fresh" ]; then FRESH=1; fi

VERSION="${NEXUS_CHAOS_PG_VERSION:-15}"
CLUSTER="${NEXUS_CHAOS_CLUSTER:-chaos}"
PORT="${NEXUS_CHAOS_PORT:-5440}"
DATABASE="${NEXUS_CHAOS_DATABASE:-nexus_chaos}"
CONF_DIR="/etc/postgresql/${VERSION}/${CLUSTER}"

if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "${VERSION} ${CLUSTER}"; then
  pg_createcluster "${VERSION}" "${CLUSTER}" -p "${PORT}" >&2
fi

# Trust for the local socket and 127.0.0.1 only: the suite's traffic never leaves the host.
HBA="${CONF_DIR}/pg_hba.conf"
if ! grep -q '^# nexus-chaos$' "${HBA}"; then
  cat > "${HBA}" <<HBA_EOF
# nexus-chaos
local   all   all                 trust
host    all   all   127.0.0.1/32  trust
host    all   all   ::1/128       trust
HBA_EOF
fi

CONF="${CONF_DIR}/postgresql.conf"
sed -i -E "s/^#?max_connections[[:space:]]*=.*/max_connections = 200/" "${CONF}"
sed -i -E "s/^#?port[[:space:]]*=.*/port = ${PORT}/" "${CONF}"

status="$(pg_lsclusters -h | awk -v v="${VERSION}" -v c="${CLUSTER}" '$1==v && $2==c {print $4}')"
if [ "${status}" = "online" ]; then
  # Settings changed above take effect on restart only if they differ from the running ones.
  current="$(psql -h 127.0.0.1 -p "${PORT}" -U postgres -Atc 'show max_connections')"
  if [ "${current}" != "200" ]; then pg_ctlcluster "${VERSION}" "${CLUSTER}" restart >&2; else pg_ctlcluster "${VERSION}" "${CLUSTER}" reload >&2; fi
else
  pg_ctlcluster "${VERSION}" "${CLUSTER}" start >&2
fi

for _ in $(seq 1 30); do
  pg_isready -h 127.0.0.1 -p "${PORT}" -q && break
  sleep 1
done

if [ "${FRESH}" = "1" ]; then
  psql -h 127.0.0.1 -p "${PORT}" -U postgres -qc "drop database if exists ${DATABASE} with (force)" >&2
fi
if [ "$(psql -h 127.0.0.1 -p "${PORT}" -U postgres -Atc "select 1 from pg_database where datname = '${DATABASE}'")" != "1" ]; then
  psql -h 127.0.0.1 -p "${PORT}" -U postgres -qc "create database ${DATABASE}" >&2
fi

echo "postgres://postgres@127.0.0.1:${PORT}/${DATABASE}"
