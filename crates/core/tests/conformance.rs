//! Conformance of the scripts to the state machine. For every script (through its one typed
//! call) and every start state, a job record is seeded in a real Redis (127.0.0.1:6379, or
//! `CELERIAC_TEST_REDIS_URL`; a key prefix of the test's own, deleted at the end), the script
//! runs on it, and the transition it made must be one `JobState::can_transition_to` allows —
//! or no transition at all; a record may disappear only from a final state (retention), or by
//! an operator's purge of anything but a running job. And the scripts' own list of the states a
//! record can hold equals `JobState::ALL`.

use celeriac_core::broker::{Ack, AckOp, NewJob, Renewal};
use celeriac_core::config::RetentionConfig;
use celeriac_core::inspector::Inspector;
use celeriac_core::{Broker, DeadReason, Envelope, JobState};
use redis::AsyncCommands;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

const TOKEN: u64 = 7;
const WORKER: &str = "conformance-worker";

fn url() -> String {
    std::env::var("CELERIAC_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

struct World {
    broker: Broker,
    prefix: String,
    runs: usize,
}

impl World {
    async fn new() -> World {
        let prefix = format!(
            "celeriac-conformance-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        );
        World {
            broker: Broker::connect(&url(), &prefix).await.unwrap(),
            prefix,
            runs: 0,
        }
    }

    /// A fresh queue holding one job in `state` (with its index entry): the queue and the id.
    async fn seed(&mut self, state: JobState) -> (String, String) {
        self.runs += 1;
        let queue = format!("q{}", self.runs);
        let id = format!("job-{}", self.runs);
        let keys = self.broker.keys();
        let mut con = self.broker.connection();
        let now = self.broker.redis_time_ms().await.unwrap();
        let envelope = Envelope {
            v: 1,
            id: id.clone(),
            kind: "noop".into(),
            queue: queue.clone(),
            payload: serde_json::json!({}),
            max_attempts: None,
            timeout_ms: None,
            created_at: now,
            run_at: None,
            idempotency_key: None,
        };
        self.broker
            .register_queues(std::slice::from_ref(&queue))
            .await
            .unwrap();
        let job = keys.job(&queue, &id);
        let _: () = redis::pipe()
            .hset_multiple(
                &job,
                &[
                    ("msg", envelope.encode()),
                    ("state", state.as_str().to_string()),
                    ("token", TOKEN.to_string()),
                    ("attempt", "1".to_string()),
                    ("worker", WORKER.to_string()),
                ],
            )
            .ignore()
            .query_async(&mut con)
            .await
            .unwrap();
        // Due or expired a second ago, so every sweep applies.
        let past = now - 1000;
        let index = index_of(&self.broker, &queue, state);
        let _: () = if state == JobState::Pending {
            con.lpush(index, &id).await.unwrap()
        } else {
            con.zadd(index, &id, past).await.unwrap()
        };
        (queue, id)
    }

    /// The job's state now (`None`: the record is gone).
    async fn state(&self, queue: &str, id: &str) -> Option<JobState> {
        let mut con = self.broker.connection();
        let s: Option<String> = con
            .hget(self.broker.keys().job(queue, id), "state")
            .await
            .unwrap();
        s.map(|s| s.parse().unwrap())
    }

    async fn clean(&self) {
        let mut con = self.broker.connection();
        let keys: Vec<String> = con.keys(format!("{}:*", self.prefix)).await.unwrap();
        for k in keys {
            let _: () = con.del(k).await.unwrap();
        }
    }
}

/// Every script, through its typed call, on the job `id` of `queue`.
const SCRIPTS: &[&str] = &[
    "fetch",
    "ack ok",
    "ack retry",
    "ack snooze",
    "ack dead",
    "ack release",
    "ack expired",
    "ack with a stale token",
    "extend",
    "extend with a stale token",
    "recover",
    "disown",
    "promote",
    "janitor",
    "cancel",
    "retry",
    "retry all dead",
    "purge",
    "enqueue the same id",
    "batch add of the same id",
    "batch seal",
    "strays repair",
    "strays repair of an unindexed record",
];

/// The index a record in `state` is in (the pending list for `pending`).
fn index_of(b: &Broker, queue: &str, state: JobState) -> String {
    let keys = b.keys();
    match state {
        JobState::Pending => keys.pending(queue),
        JobState::Active => keys.active(queue),
        JobState::Scheduled => keys.scheduled(queue),
        JobState::Retrying => keys.retry(queue),
        JobState::Succeeded => keys.succeeded(queue),
        JobState::Dead => keys.dead(queue),
        JobState::Cancelled => keys.cancelled(queue),
    }
}

async fn run(world: &World, script: &str, queue: &str, id: &str, from: JobState) {
    let b = &world.broker;
    let keep = RetentionConfig::default();
    let ack = |op: AckOp, token: u64| {
        vec![Ack {
            id: id.into(),
            token,
            op,
            progress: None,
        }]
    };
    let inspector = Inspector::new(b.clone(), Arc::new(|_: &str| 25));
    match script {
        "fetch" => drop(
            b.fetch(queue, 10, Duration::from_secs(30), "other", 1 << 20)
                .await,
        ),
        "ack ok" => drop(b.ack(queue, &ack(AckOp::Ok(None), TOKEN), &keep).await),
        "ack retry" => {
            let op = AckOp::Retry {
                error: "e".into(),
                delay: Duration::from_secs(1),
            };
            drop(b.ack(queue, &ack(op, TOKEN), &keep).await)
        }
        "ack snooze" => {
            let op = AckOp::Snooze(Duration::from_secs(1));
            drop(b.ack(queue, &ack(op, TOKEN), &keep).await)
        }
        "ack dead" => {
            let op = AckOp::Dead {
                error: "e".into(),
                reason: DeadReason::Discarded,
            };
            drop(b.ack(queue, &ack(op, TOKEN), &keep).await)
        }
        "ack release" => drop(b.ack(queue, &ack(AckOp::Release, TOKEN), &keep).await),
        "ack expired" => drop(b.ack(queue, &ack(AckOp::Expired, TOKEN), &keep).await),
        "ack with a stale token" => drop(b.ack(queue, &ack(AckOp::Ok(None), 1), &keep).await),
        "extend" | "extend with a stale token" => {
            let token = if script == "extend" { TOKEN } else { 1 };
            let r = Renewal {
                id: id.into(),
                token,
                progress: None,
            };
            drop(b.extend(queue, &[r], Duration::from_secs(30)).await)
        }
        "recover" => {
            let zero = Duration::ZERO;
            drop(b.recover(queue, 3, 100, &keep, zero, "sweeper", &[]).await)
        }
        "disown" => drop(b.disown(queue, WORKER, &[]).await),
        "promote" => drop(b.promote(queue, 100).await),
        "janitor" => {
            let gone = RetentionConfig {
                succeeded_ttl: Duration::ZERO,
                dead_ttl: Duration::ZERO,
                ..RetentionConfig::default()
            };
            drop(b.janitor(queue, &gone, 100).await)
        }
        "cancel" => drop(inspector.cancel(&[id.to_string()], Some(queue)).await),
        "retry" => drop(inspector.retry(&[id.to_string()], Some(queue)).await),
        "retry all dead" => drop(inspector.retry_all_dead(queue).await),
        "purge" => drop(inspector.purge(queue, from).await),
        "enqueue the same id" => {
            let env = Envelope {
                v: 1,
                id: id.into(),
                kind: "noop".into(),
                queue: queue.into(),
                payload: serde_json::json!({}),
                max_attempts: None,
                timeout_ms: None,
                created_at: 0,
                run_at: None,
                idempotency_key: None,
            };
            let job = NewJob {
                body: env.encode(),
                envelope: env,
                delay: None,
                run_at_ms: None,
                idempotency_ttl: Duration::from_secs(1),
            };
            drop(b.enqueue(&[job]).await)
        }
        "batch add of the same id" | "batch seal" => {
            let env = Envelope {
                v: 1,
                id: id.into(),
                kind: "noop".into(),
                queue: queue.into(),
                payload: serde_json::json!({}),
                max_attempts: None,
                timeout_ms: None,
                created_at: 0,
                run_at: None,
                idempotency_key: None,
            };
            let job = NewJob {
                body: env.encode(),
                envelope: env,
                delay: None,
                run_at_ms: None,
                idempotency_ttl: Duration::from_secs(1),
            };
            let day = Duration::from_secs(86_400);
            if script == "batch seal" {
                drop(b.batch_seal(queue, "b", Some(&job), day, day).await)
            } else {
                drop(b.batch_add(queue, "b", &[job], day).await)
            }
        }
        "strays repair" | "strays repair of an unindexed record" => {
            let mut con = b.connection();
            if script != "strays repair" {
                let index = index_of(b, queue, from);
                let _: () = if from == JobState::Pending {
                    con.lrem(index, 0, id).await.unwrap()
                } else {
                    con.zrem(index, id).await.unwrap()
                };
            }
            let _: () = con.hset(b.keys().strays(queue), id, "{}").await.unwrap();
            drop(inspector.repair_strays(queue).await)
        }
        other => panic!("no script {other}"),
    }
}

#[tokio::test]
async fn every_script_makes_only_transitions_the_state_machine_allows() {
    let mut world = World::new().await;
    let mut seen: BTreeSet<(JobState, JobState)> = BTreeSet::new();
    let mut failures = Vec::new();
    for &script in SCRIPTS {
        for from in JobState::ALL {
            let (queue, id) = world.seed(from).await;
            run(&world, script, &queue, &id, from).await;
            match world.state(&queue, &id).await {
                // Retention deletes finished jobs; an operator's purge deletes any job but a
                // running one.
                None if from.is_final() || script == "purge" && from != JobState::Active => {}
                None => failures.push(format!("{script}: a {from} record disappeared")),
                Some(to) if to == from => {}
                Some(to) => {
                    seen.insert((from, to));
                    if !from.can_transition_to(to) {
                        failures.push(format!("{script}: {from} → {to} is not a legal transition"));
                    }
                }
            }
        }
    }
    world.clean().await;
    assert!(failures.is_empty(), "{failures:#?}");
    // The run covered the edges the workers and operators use.
    for edge in [
        (JobState::Pending, JobState::Active),
        (JobState::Active, JobState::Succeeded),
        (JobState::Active, JobState::Retrying),
        (JobState::Active, JobState::Scheduled),
        (JobState::Active, JobState::Dead),
        (JobState::Active, JobState::Pending),
        (JobState::Scheduled, JobState::Pending),
        (JobState::Retrying, JobState::Pending),
        (JobState::Dead, JobState::Pending),
        (JobState::Cancelled, JobState::Pending),
        (JobState::Pending, JobState::Cancelled),
        (JobState::Active, JobState::Cancelled),
    ] {
        assert!(seen.contains(&edge), "no script made {edge:?}: {seen:?}");
    }
}

#[tokio::test]
async fn the_scripts_know_the_same_states_as_job_state() {
    let script = redis::Script::new(&format!(
        "{}\nlocal out = {{}}\nfor state in pairs(KNOWN_STATE) do out[#out + 1] = state end\nreturn out",
        celeriac_core::scripts::LIB
    ));
    let mut con = redis::Client::open(url().as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let known: Vec<String> = script.invoke_async(&mut con).await.unwrap();
    let known: BTreeSet<String> = known.into_iter().collect();
    let ours: BTreeSet<String> = JobState::ALL
        .iter()
        .map(|s| s.as_str().to_string())
        .collect();
    assert_eq!(known, ours);
}

/// A fencing token is stored as the digits the worker reads, however long (`digits` in
/// lib.lua; Lua's own `tostring` would store `1e+14`): one of 15 digits is accepted by the
/// renewal and the ack.
#[tokio::test]
async fn a_fencing_token_of_fifteen_digits_is_stored_as_its_digits() {
    let mut world = World::new().await;
    let (queue, id) = world.seed(JobState::Pending).await;
    let b = &world.broker;
    let mut con = b.connection();
    let _: () = con
        .set(b.keys().tokens(&queue), 99_999_999_999_999u64)
        .await
        .unwrap();
    let fetched = b
        .fetch(&queue, 10, Duration::from_secs(30), WORKER, 1 << 20)
        .await
        .unwrap();
    assert_eq!(fetched.jobs.len(), 1);
    let token = fetched.jobs[0].token;
    assert_eq!(token, 100_000_000_000_000);
    let stored: String = con.hget(b.keys().job(&queue, &id), "token").await.unwrap();
    assert_eq!(stored, "100000000000000");
    let renewal = Renewal {
        id: id.clone(),
        token,
        progress: None,
    };
    let refused = b
        .extend(&queue, &[renewal], Duration::from_secs(30))
        .await
        .unwrap();
    assert!(refused.is_empty(), "renewal refused: {refused:?}");
    let ack = Ack {
        id: id.clone(),
        token,
        op: AckOp::Ok(None),
        progress: None,
    };
    let refused = b
        .ack(&queue, &[ack], &RetentionConfig::default())
        .await
        .unwrap();
    assert!(refused.is_empty(), "outcome refused: {refused:?}");
    assert_eq!(world.state(&queue, &id).await, Some(JobState::Succeeded));
    world.clean().await;
}
