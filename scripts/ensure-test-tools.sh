#!/usr/bin/env bash
# The fault-injection, ACL and TLS tests start private redis-server processes and make
# certificates with openssl; the SQL tests create databases of their own on the PostgreSQL at
# 127.0.0.1:5432 with psql (CELERIAC_TEST_POSTGRES_URL names another server).
# Install what is missing (apt-get, as root), or say how; then check PostgreSQL answers.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]} for the tests (apt-get)…" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  else
    echo "error: the tests need ${missing[*]}; install them (e.g. sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi
pg="${CELERIAC_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
if ! psql "$pg" -Atqc 'select 1' >/dev/null 2>&1; then
  echo "error: the SQL tests need PostgreSQL at $pg (a user that may CREATE DATABASE)." >&2
  echo "       Start one (e.g. apt-get install postgresql && service postgresql start), or point" >&2
  echo "       CELERIAC_TEST_POSTGRES_URL at a server you may create databases on." >&2
  exit 1
fi
