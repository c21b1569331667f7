#!/usr/bin/env bash
# Run the end-to-end suite against a local 3-master Redis Cluster (three redis-server processes
# on free loopback ports, created with redis-cli --cluster create). The fault-injection, ACL
# and TLS tests start private single-node servers of their own and are left out here, as are the
# deployment tests (deploy::), which use no shared Redis. The testkit's keyspace tests run too:
# a test's keys are spread over the masters and must all be deleted.
set -euo pipefail
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

free_port() {
  python3 - <<'PY'
import socket
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    if p + 10000 < 65536:
        b = socket.socket()
        try:
            b.bind(("127.0.0.1", p + 10000)); b.close(); print(p); break
        except OSError:
            pass
PY
}

ports=()
for i in 1 2 3; do
  port=$(free_port)
  mkdir -p "$dir/$port"
  redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
    --cluster-config-file "$dir/$port/nodes.conf" --dir "$dir/$port" \
    --save "" --appendonly no --logfile "$dir/$port/redis.log" &
  pids+=($!)
  ports+=("$port")
done
for port in "${ports[@]}"; do
  for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
done
redis-cli --cluster create "127.0.0.1:${ports[0]}" "127.0.0.1:${ports[1]}" "127.0.0.1:${ports[2]}" \
  --cluster-replicas 0 --cluster-yes >/dev/null
for _ in $(seq 1 100); do
  redis-cli -p "${ports[0]}" cluster info | grep -q "cluster_state:ok" && break
  sleep 0.1
done
echo "3-master cluster up on ports ${ports[*]}; running the end-to-end suite against it" >&2
export CELERIAC_TEST_REDIS_URL="redis://127.0.0.1:${ports[0]}"
if cargo nextest --version >/dev/null 2>&1; then
  # --workspace, as in the first pass, so nothing is compiled again with other features.
  cargo nextest run --workspace --locked --no-fail-fast \
    -E '(binary(e2e) & not (test(chaos::) | test(chaos_redis::) | test(partition::) | test(acl::) | test(tls::) | test(store::) | test(linkcheck::) | test(deploy::))) | (package(celeriac-testkit) & test(keyspace::))' "$@"
else
  cargo test -p celeriac-cli --locked --test e2e -- --skip chaos:: --skip chaos_redis:: --skip partition:: --skip acl:: --skip tls:: --skip store:: --skip linkcheck:: --skip deploy:: "$@"
  cargo test -p celeriac-testkit --locked --test kit -- keyspace:: "$@"
fi
