//! Drill kinds for fault-injection runs (`make chaos`). They are registered only when a worker
//! is started with `CELERIAC_DRILL_LEDGER=DIR`, never in a normal deployment:
//!
//! - `drill.record` `{"ms": N}`: appends `S id attempt token worker start_us` to
//!   `DIR/PID.ledger` (fsynced), sleeps N ms, then appends `E id attempt token worker end_us`
//!   (fsynced) and succeeds. The ledger lives outside Redis, so a run can be checked for lost,
//!   duplicated or overlapping executions whatever happened to Redis.
//! - `drill.abort`: aborts the worker process (a poison job that crashes its worker).

use crate::handler::{Job, Outcome, Registry};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Register the drill kinds, writing the ledger under `dir`.
pub fn register(registry: &mut Registry, dir: PathBuf) -> std::io::Result<&mut Registry> {
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{}.ledger", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let ledger = Arc::new(Mutex::new(file));
    Ok(registry
        .register("drill.record", move |job: Job| {
            let ledger = ledger.clone();
            async move {
                let ms = job.payload.get("ms").and_then(|v| v.as_u64()).unwrap_or(0);
                let line = |tag: &str| {
                    format!(
                        "{tag} {} {} {} {} {}\n",
                        job.id,
                        job.attempt,
                        job.token,
                        job.worker,
                        celeriac_core::time::now_us()
                    )
                };
                if let Err(e) = append(&ledger, &line("S")) {
                    return Outcome::Retry(format!("ledger write failed: {e}"));
                }
                tokio::time::sleep(Duration::from_millis(ms)).await;
                if let Err(e) = append(&ledger, &line("E")) {
                    return Outcome::Retry(format!("ledger write failed: {e}"));
                }
                Outcome::Done(None)
            }
        })
        .register("drill.abort", |_job: Job| async {
            std::process::abort();
        }))
}

fn append(ledger: &Mutex<std::fs::File>, line: &str) -> std::io::Result<()> {
    let mut f = ledger
        .lock()
        .map_err(|_| std::io::Error::other("ledger lock poisoned"))?;
    f.write_all(line.as_bytes())?;
    f.sync_data()
}
