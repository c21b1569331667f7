#!/usr/bin/env python3
"""Draw the picture of the Grafana dashboard in docs/deploy.md from a real run.

No Grafana runs here, so this script does what Prometheus and Grafana would do for eight of the
dashboard's panels, from real data: it starts a private redis-server, a `celeriac worker` and a
`celeriac cron` with `[http] listen` set, feeds the worker a varying workload (bursts of `sleep`
jobs, `fail` jobs that succeed on their second attempt, jobs that exhaust their attempts and
malformed payloads), scrapes both `/metrics` endpoints every second, evaluates each panel's
query over the samples (rate over a 10 s window, histogram quantiles from bucket rates, like
PromQL) and draws the panels with matplotlib.

usage: scripts/dashboard-picture.py [--celeriac target/debug/celeriac] [--seconds 120]
                                    [--out docs/img/dashboard.png]
Needs redis-server and Python 3 with prometheus-client and matplotlib (`make dashboard-picture`
installs them into target/dashboard-tools/venv).
"""

import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict

try:
    from prometheus_client.parser import text_string_to_metric_families
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError as e:
    sys.exit(f"error: {e}; run `make dashboard-picture`, which installs prometheus-client and matplotlib")

RATE_WINDOW = 10.0  # seconds, like [$__rate_interval] at a 1 s scrape interval


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, check, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"error: {what} did not come up within {timeout:.0f} s")


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def series(samples, name, by, where=lambda labels: True):
    """Sum of `name` by the labels `by`, at each scrape: {group: [(t, value)]}."""
    out = defaultdict(list)
    for t, snap in samples:
        groups = defaultdict(float)
        seen = set()
        for (n, labels), v in snap.items():
            d = dict(labels)
            if n != name or not where(d):
                continue
            g = tuple(d.get(k, "") for k in by)
            groups[g] += v
            seen.add(g)
        for g in seen:
            out[g].append((t, groups[g]))
    return out


def rate(points):
    """Per-second increase over RATE_WINDOW, at each point that has a window behind it."""
    out = []
    for i, (t, v) in enumerate(points):
        j = i
        while j > 0 and t - points[j - 1][0] <= RATE_WINDOW:
            j -= 1
        t0, v0 = points[j]
        if t - t0 >= RATE_WINDOW / 2:
            out.append((t, max(v - v0, 0.0) / (t - t0)))
    return out


def quantile(q, buckets):
    """histogram_quantile over {le: rate}."""
    les = sorted(buckets, key=lambda le: float(le))
    total = buckets[les[-1]]
    if total <= 0:
        return None
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le in les:
        c = buckets[le]
        if c >= rank:
            upper = float(le)
            if upper == float("inf"):
                return prev_le
            return prev_le + (upper - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-12)
        prev_le, prev_c = float(le), c
    return prev_le


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--celeriac", default="target/debug/celeriac")
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--out", default="docs/img/dashboard.png")
    args = ap.parse_args()
    if not os.access(args.celeriac, os.X_OK):
        sys.exit(f"error: {args.celeriac} is not an executable; build it first (cargo build -p celeriac-cli)")
    redis_server = shutil.which("redis-server")
    if not redis_server:
        sys.exit("error: redis-server not found (Debian: apt-get install redis-server)")

    tmp = tempfile.mkdtemp(prefix="celeriac-dashboard.")
    procs = []
    try:
        rport, wport, cport = free_port(), free_port(), free_port()
        procs.append(subprocess.Popen(
            [redis_server, "--port", str(rport), "--save", "", "--appendonly", "no", "--dir", tmp],
            stdout=subprocess.DEVNULL))
        wait_for("redis-server", lambda: socket.create_connection(("127.0.0.1", rport), 1).close() or True)
        config = os.path.join(tmp, "celeriac.toml")
        with open(config, "w") as f:
            f.write(f'redis_url = "redis://127.0.0.1:{rport}"\nprefix = "dash"\n'
                    '[[cron.schedules]]\nname = "heartbeat-report"\nschedule = "*/5 * * * * *"\n'
                    'kind = "noop"\nqueue = "reports"\n')
        env = dict(os.environ, RUST_LOG="warn")
        log = open(os.path.join(tmp, "celeriac.log"), "w")
        celeriac = [args.celeriac, "--config", config]
        procs.append(subprocess.Popen(
            celeriac + ["worker", "--concurrency", "8", "--queues", "default,reports"],
            env=dict(env, CELERIAC_HTTP__LISTEN=f"127.0.0.1:{wport}"), stderr=log))
        procs.append(subprocess.Popen(
            celeriac + ["cron"], env=dict(env, CELERIAC_HTTP__LISTEN=f"127.0.0.1:{cport}"), stderr=log))
        for port in (wport, cport):
            wait_for(f"/metrics on port {port}", lambda: scrape(port) is not None)

        def enqueue(kind, n, payload="{}", *extra):
            subprocess.run(celeriac + ["enqueue", kind, "--count", str(n), "--payload", payload, *extra],
                           stdout=subprocess.DEVNULL, stderr=log, check=True, env=env)

        rng = random.Random(7)
        samples = []
        start = time.monotonic()
        print(f"running a workload for {args.seconds:.0f} s and scraping every second…", file=sys.stderr)
        while (now := time.monotonic() - start) < args.seconds:
            # A slow wave of sleep jobs with a burst a third of the way in and two thirds in.
            burst = args.seconds / 3 <= now < args.seconds / 3 + 8 or 2 * args.seconds / 3 <= now < 2 * args.seconds / 3 + 5
            enqueue("sleep", 120 if burst else rng.randint(10, 30), f'{{"ms": {rng.randint(5, 60)}}}')
            if rng.random() < 0.5:
                enqueue("fail", rng.randint(1, 4), '{"times": 1}', "--max-attempts", "3")
            if rng.random() < 0.15:
                enqueue("fail", 1, "{}", "--max-attempts", "2", "--queue", "reports")
            if rng.random() < 0.1:
                enqueue("sleep", 1, '{"seconds": 1}')  # not the payload `sleep` takes: dead at once
            # Scrape half-way between two rounds of enqueues, not in phase with them (as a
            # Prometheus would not be): right after a round, every new job is pending or active.
            time.sleep(max(0.0, 0.5 - (time.monotonic() - start - now)))
            worker, cron = scrape(wport), scrape(cport)
            samples.append((time.monotonic() - start, {**worker, **cron}))
            time.sleep(max(0.0, 1.0 - (time.monotonic() - start - now)))
        print(f"{len(samples)} scrapes; drawing {args.out}", file=sys.stderr)
        draw(samples, args.out)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def draw(samples, out):
    fig, axes = plt.subplots(4, 2, figsize=(13, 13), constrained_layout=True)
    fig.suptitle("Celeriac dashboard (deploy/grafana/celeriac.json), panels computed from a local run", fontsize=13)

    def plot(ax, title, groups, label, unit="", transform=lambda p: p):
        for g, pts in sorted(groups.items()):
            pts = transform(pts)
            if pts:
                ax.plot([t for t, _ in pts], [v for _, v in pts], label=label(g), linewidth=1.4)
        ax.set_title(title, fontsize=10, loc="left")
        ax.set_xlabel("seconds into the run", fontsize=8)
        if unit:
            ax.set_ylabel(unit, fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="upper left")

    plot(axes[0][0], "Jobs finished per second, by outcome",
         series(samples, "celeriac_jobs_finished_total", ["outcome"]), lambda g: g[0], "jobs/s", rate)
    plot(axes[0][1], "Dead jobs per second, by reason",
         series(samples, "celeriac_jobs_dead_total", ["reason"]), lambda g: g[0], "jobs/s", rate)
    plot(axes[1][0], "Queue depth, by state",
         series(samples, "celeriac_queue_jobs", ["state"],
                lambda d: d.get("state") in ("pending", "scheduled", "active", "retrying")),
         lambda g: g[0], "jobs")
    plot(axes[1][1], "Oldest pending job, by queue",
         series(samples, "celeriac_queue_oldest_pending_seconds", ["queue"]), lambda g: g[0], "seconds")

    buckets = series(samples, "celeriac_job_duration_seconds_bucket", ["le"])
    rates = {le: dict(rate(pts)) for (le,), pts in buckets.items()}
    times = sorted({t for r in rates.values() for t in r})
    quantiles = {}
    for q in (0.5, 0.95, 0.99):
        pts = []
        for t in times:
            v = quantile(q, {le: r.get(t, 0.0) for le, r in rates.items()})
            if v is not None:
                pts.append((t, v * 1000))
        quantiles[(f"p{int(q * 100)}",)] = pts
    plot(axes[2][0], "Handler duration p50 / p95 / p99", quantiles, lambda g: g[0], "ms")
    plot(axes[2][1], "Jobs in flight, by queue",
         series(samples, "celeriac_jobs_in_flight", ["queue"]), lambda g: g[0], "jobs")

    sums = series(samples, "celeriac_fetch_batch_size_sum", ["queue"])
    counts = series(samples, "celeriac_fetch_batch_size_count", ["queue"])
    mean = {}
    for g, pts in sums.items():
        c = dict(rate(counts.get(g, [])))
        mean[g] = [(t, v / c[t]) for t, v in rate(pts) if c.get(t)]
    plot(axes[3][0], "Fetch batch size (mean), by queue", mean, lambda g: g[0], "jobs per fetch")
    plot(axes[3][1], "Cron ticks, by schedule and result (cumulative)",
         series(samples, "celeriac_cron_ticks_total", ["schedule", "result"]),
         lambda g: f"{g[0]} {g[1]}", "ticks")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    fig.savefig(out, dpi=80)


if __name__ == "__main__":
    main()
