#!/usr/bin/env bash
# The interop test runs examples/python/enqueue.py, which needs Python 3 and redis-py.
set -euo pipefail
py="${PYTHON:-python3}"
if ! command -v "$py" >/dev/null 2>&1; then
  echo "error: $py not found; install Python 3 (the interop test runs examples/python/enqueue.py)" >&2
  exit 1
fi
if "$py" -c 'import redis' 2>/dev/null; then exit 0; fi
echo "installing redis-py for the interop test (pip install redis)…" >&2
if ! "$py" -m pip install --quiet --disable-pip-version-check 'redis>=4.5' >&2; then
  echo "error: could not install redis-py; run: $py -m pip install redis" >&2
  exit 1
fi
