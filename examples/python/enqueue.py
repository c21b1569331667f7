#!/usr/bin/env python3
"""Enqueue a Celeriac job from Python with nothing but redis-py.

Follows docs/wire-format.md (envelope version 1). Usage:

    python3 enqueue.py noop
    python3 enqueue.py sleep --payload '{"ms": 500}' --queue slow --delay-ms 30000
    python3 enqueue.py fail --payload '{"times": 1}' --max-attempts 3

Prints the new job's id; `celeriac status <id>` shows it.
"""

import argparse
import json
import sys
import time
import uuid

import redis


def enqueue(r, prefix, queue, kind, payload, max_attempts=None, delay_ms=None, job_id=None):
    """Write one job as the wire format says; returns its id."""
    job_id = job_id or str(uuid.uuid4())
    now_ms = int(time.time() * 1000)
    envelope = {
        "v": 1,
        "id": job_id,
        "kind": kind,
        "queue": queue,
        "payload": payload,
        "created_at": now_ms,
    }
    if max_attempts is not None:
        envelope["max_attempts"] = max_attempts
    base = f"{prefix}:{{{queue}}}:"  # every key of a queue shares the hash tag {queue}
    job_key = base + "job:" + job_id

    # Make the queue known to `celeriac queues` (a key of its own, so not in the transaction).
    r.sadd(f"{prefix}:queues", queue)

    pipe = r.pipeline(transaction=True)  # MULTI/EXEC: the record and its index appear together
    if delay_ms:
        run_at = now_ms + delay_ms
        envelope["run_at"] = run_at
        pipe.hset(job_key, mapping={"msg": json.dumps(envelope), "state": "scheduled"})
        pipe.zadd(base + "scheduled", {job_id: run_at})
    else:
        pipe.hset(job_key, mapping={"msg": json.dumps(envelope), "state": "pending"})
        pipe.lpush(base + "pending", job_id)
        # Optional: wake an idle worker now instead of at its next poll (within 1 s).
        pipe.lpush(base + "wake", "1")
        pipe.ltrim(base + "wake", 0, 0)
    pipe.execute()
    return job_id


def main():
    p = argparse.ArgumentParser(description="Enqueue a Celeriac job with redis-py.")
    p.add_argument("kind", help="job kind, e.g. noop, sleep, fail")
    p.add_argument("--payload", default="{}", help="payload as JSON (default {})")
    p.add_argument("--queue", default="default")
    p.add_argument("--prefix", default="celeriac", help="Celeriac's key prefix")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    p.add_argument("--max-attempts", type=int)
    p.add_argument("--delay-ms", type=int, help="run no earlier than this many ms from now")
    args = p.parse_args()
    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as e:
        sys.exit(f"--payload is not valid JSON: {e}")
    r = redis.Redis.from_url(args.redis_url)
    print(enqueue(r, args.prefix, args.queue, args.kind, payload, args.max_attempts, args.delay_ms))


if __name__ == "__main__":
    main()
