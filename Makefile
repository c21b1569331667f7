# The same commands CI runs (.ci/run = make lint + make test).
CARGO ?= cargo
CONFIG ?= config/default.toml

.PHONY: run test lint fmt bench bench-links bench-verification bench-fanout chaos build dashboard-picture

## run: start the service on its embedded defaults (starts a local Redis if none answers):
## the scheduler (celeriac cron) in the background and a worker in the foreground
run:
	@scripts/ensure-redis.sh
	$(CARGO) build --locked --release -p celeriac-cli
	./target/release/celeriac --config $(CONFIG) cron & cron=$$!; \
	trap 'kill $$cron 2>/dev/null; wait $$cron' EXIT INT TERM; \
	./target/release/celeriac --config $(CONFIG) worker

## test: every test (unit, property, end-to-end against real Redis, Python interop)
test:
	@scripts/ensure-redis.sh
	@scripts/ensure-python-redis.sh
	@scripts/ensure-test-tools.sh
	@scripts/ensure-deploy-tools.sh || echo "warning: the deployment tests' tools are missing (see above); tests/e2e/deploy.rs will fail" >&2
	$(CARGO) test --workspace --locked --doc
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --locked --no-fail-fast; \
	else \
		echo "cargo-nextest not found; using cargo test (install it with: cargo install cargo-nextest)"; \
		$(CARGO) test --workspace --locked --no-fail-fast; \
	fi
	@echo "--- the end-to-end suite again, against a local 3-master Redis Cluster"
	@scripts/test-cluster.sh

## lint: formatting and clippy, warnings are errors
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt:
	$(CARGO) fmt --all

## chaos: the full fault-injection suite with its ledger (see docs/reliability.md)
chaos:
	@command -v redis-server >/dev/null || { echo "make chaos needs redis-server (apt-get install redis-server)"; exit 1; }
	$(CARGO) nextest run -p celeriac-cli --locked --run-ignored ignored-only --no-capture -E 'test(chaos_full)'

## bench: throughput, latency and Redis cost on this machine (see docs/benchmarks.md)
bench:
	@command -v redis-server >/dev/null || { echo "make bench needs redis-server and redis-benchmark (apt-get install redis-server)"; exit 1; }
	$(CARGO) build --locked --release -p celeriac-cli -p celeriac-bench
	./target/release/celeriac-bench --celeriac ./target/release/celeriac
	@$(MAKE) --no-print-directory bench-links
	@$(MAKE) --no-print-directory bench-verification
	@$(MAKE) --no-print-directory bench-fanout

## bench-links: one links.check run over 10,000 local links, against lychee (cargo install lychee)
bench-links:
	$(CARGO) build --locked --release -p celeriac-cli -p celeriac-bench
	./target/release/celeriac-bench-links --celeriac ./target/release/celeriac

## bench-fanout: a broadcast to 100,000 webhook recipients on a local keep-alive sink: children
## enqueued/s, deliveries/s, batch memory in Redis, completion after the last delivery
bench-fanout:
	@command -v redis-server >/dev/null || { echo "make bench-fanout needs redis-server (apt-get install redis-server)"; exit 1; }
	$(CARGO) build --locked --release -p celeriac-cli -p celeriac-bench --bin celeriac --bin celeriac-bench-fanout
	./target/release/celeriac-bench-fanout --celeriac ./target/release/celeriac

## bench-verification: joins, reminders, kicks and answers of the verification domain on a
## celeriac worker against the fake OneBot on 127.0.0.1, pacing off; the worker's memory
bench-verification:
	@command -v redis-server >/dev/null || { echo "make bench-verification needs redis-server (apt-get install redis-server)"; exit 1; }
	$(CARGO) build --locked --release -p celeriac-cli -p celeriac-bench
	./target/release/celeriac-bench-verification --celeriac ./target/release/celeriac

build:
	$(CARGO) build --locked --workspace

## dashboard-picture: redraw docs/img/dashboard.png from a 2-minute local run of a worker and a
## cron scraped every second (no Grafana here: the script evaluates the panels' queries itself)
dashboard-picture:
	@scripts/ensure-redis.sh
	$(CARGO) build --locked -p celeriac-cli
	@test -x target/dashboard-tools/venv/bin/python || python3 -m venv target/dashboard-tools/venv
	@target/dashboard-tools/venv/bin/python -m pip install --quiet --disable-pip-version-check \
		prometheus-client==0.21.1 matplotlib==3.10.7
	target/dashboard-tools/venv/bin/python scripts/dashboard-picture.py --celeriac target/debug/celeriac
