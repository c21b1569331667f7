//! What the inspector returns. `docs/cli.md` documents every field of the JSON the CLI prints.

use serde::Serialize;
use std::collections::BTreeMap;

/// One job as the CLI shows it. Times are RFC 3339 (UTC, ms); a stored time that is not one
/// (past year 9999, negative, not a number) is its raw value flagged `(out of range)`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct JobInfo {
    /// Job id.
    pub id: String,
    /// Job kind (empty when the envelope cannot be read).
    pub kind: String,
    /// Queue.
    pub queue: String,
    /// Current state.
    pub state: String,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Enqueue time (RFC 3339).
    pub created_at: Option<String>,
    /// Start of the latest attempt.
    pub started_at: Option<String>,
    /// When the job reached a final state.
    pub finished_at: Option<String>,
    /// When a scheduled or retrying job is due.
    pub run_at: Option<String>,
    /// Error of the latest failed attempt.
    pub last_error: Option<String>,
    /// Why a dead job is dead (`max_attempts`, `worker_lost`, `decode_error`, …).
    pub reason: Option<String>,
    /// The handler's result, for succeeded jobs that returned one.
    pub result: Option<serde_json::Value>,
    /// The latest progress the handler reported (written at each heartbeat while it runs, and
    /// with the outcome).
    pub progress: Option<serde_json::Value>,
    /// The handler's input.
    pub payload: serde_json::Value,
    /// Worker holding (or that last held) the job.
    pub worker: Option<String>,
    /// One entry per attempt, oldest first.
    pub history: Vec<Attempt>,
    /// The batch this job created under an id not its own (`{"queue", "id"}`); absent when it
    /// created none or gave the batch its own id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spawned: Option<BatchRef>,
}

/// Where a batch is: its children's queue and its id.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct BatchRef {
    /// The queue of its children.
    pub queue: String,
    /// The batch's id.
    pub id: String,
}

/// One attempt in a job's history.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Attempt {
    /// Attempt number.
    pub attempt: Option<u32>,
    /// Worker id.
    pub worker: Option<String>,
    /// Start.
    pub started_at: Option<String>,
    /// End (absent while running).
    pub finished_at: Option<String>,
    /// `succeeded`, `retry`, `dead`, `snooze`, `release`, `lost` or `running`.
    pub outcome: String,
    /// Error message, for failures.
    pub error: Option<String>,
}

/// Per-queue figures.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct QueueInfo {
    /// Queue name.
    pub queue: String,
    /// Jobs in each state.
    pub states: BTreeMap<String, u64>,
    /// Age in milliseconds of the job waiting longest in `pending`.
    pub oldest_pending_age_ms: Option<u64>,
    /// Jobs that succeeded in the last minute.
    pub processed_last_minute: u64,
    /// Failed attempts in the last minute.
    pub failed_last_minute: u64,
    /// Jobs that succeeded since the queue existed.
    pub processed_total: u64,
    /// Failed attempts since the queue existed.
    pub failed_total: u64,
    /// Dead jobs by reason since the queue existed.
    pub dead_by_reason: BTreeMap<String, u64>,
    /// Strays waiting for an operator: records found outside the index of their state, and job
    /// keys that are not hashes (`celeriac jobs strays --queue Q` lists and settles them).
    pub strays: u64,
    /// Keys of this queue that could not be read, with Redis's error (a key of another type
    /// written inside Celeriac's prefix): their figures are shown as 0.
    pub unreadable: Vec<String>,
    /// Set when this member of `P:queues` is not a queue name (not UTF-8, or breaking the
    /// naming rules): why. `queue` is then the member escaped (`bad\xff`), every figure is 0,
    /// and every command skips it.
    pub skipped: Option<String>,
}

/// A live worker.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct WorkerInfo {
    /// Worker id.
    pub id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Queues served.
    pub queues: Vec<String>,
    /// Handler slots.
    pub concurrency: u32,
    /// Jobs running now.
    pub in_flight: u32,
    /// Start time.
    pub started_at: Option<String>,
    /// Last heartbeat.
    pub last_heartbeat: Option<String>,
}

/// What happened to one id in a cancel or retry.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Repair {
    /// Job id.
    pub id: String,
    /// Queue, when the job exists.
    pub queue: Option<String>,
    /// State before the operation (None: no such job).
    pub previous: Option<String>,
    /// Whether the operation changed the job.
    pub changed: bool,
}

impl Repair {
    pub(super) fn no_such_job(id: String) -> Repair {
        Repair {
            id,
            queue: None,
            previous: None,
            changed: false,
        }
    }
}

/// A batch of child jobs (ADR 0010), as `celeriac status PARENT_ID` shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct BatchInfo {
    /// The batch's id (the parent job's, unless the parent chose another).
    pub id: String,
    /// The queue of its children, where the batch record lives.
    pub queue: String,
    /// Children.
    pub total: u64,
    /// Children not yet counted in a final state.
    pub pending: u64,
    /// Children whose first final state was `succeeded`.
    pub succeeded: u64,
    /// … `dead`.
    pub dead: u64,
    /// … `cancelled`.
    pub cancelled: u64,
    /// When the batch was created (RFC 3339, Redis clock).
    pub created_at: Option<String>,
    /// When its last child was counted (RFC 3339); absent while it runs.
    pub completed_at: Option<String>,
}

impl BatchInfo {
    /// Batch `id` of `queue` with `counts`.
    pub fn new(id: String, queue: String, counts: crate::broker::BatchCounts) -> BatchInfo {
        BatchInfo {
            id,
            queue,
            total: counts.total,
            pending: counts.pending,
            succeeded: counts.succeeded,
            dead: counts.dead,
            cancelled: counts.cancelled,
            created_at: Some(counts.created_at_ms)
                .filter(|&t| t > 0)
                .map(crate::time::rfc3339_ms),
            completed_at: counts.completed_at_ms.map(crate::time::rfc3339_ms),
        }
    }
}
