//! Drill kinds for fault-injection runs (`make chaos`). They are registered only when a worker
//! is started with `CELERIAC_DRILL_LEDGER=DIR`, never in a normal deployment:
//!
//! - `drill.record` `{"ms": N}`: appends `S id attempt token worker start_us` to
//!   `DIR/PID.ledger` (fsynced), sleeps N ms, then appends `E id attempt token worker end_us`
//!   (fsynced) and succeeds. A run stopped before its end (lease lost or expired, shutdown,
//!   timeout: the worker drops the handler) appends `X … stop_us` instead, when it is dropped.
//!   The ledger lives outside Redis, so a run can be checked for lost, duplicated or
//!   overlapping executions whatever happened to Redis.
//! - `drill.abort`: aborts the worker process (a poison job that crashes its worker).

use crate::job::{Job, Outcome};
use crate::registry::Registry;
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
                // Written when the worker drops this run before its end.
                let mut stopped = Stopped {
                    ledger: ledger.clone(),
                    line: Some(line("X")),
                };
                tokio::time::sleep(Duration::from_millis(ms)).await;
                stopped.line = None;
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

/// Appends its line (with the time of the drop) unless disarmed.
struct Stopped {
    ledger: Arc<Mutex<std::fs::File>>,
    line: Option<String>,
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Some(line) = self.line.take() {
            // `line` ends with the start time; the stop time replaces it.
            let head = line.trim_end().rsplit_once(' ').map_or("", |(h, _)| h);
            let _ = append(
                &self.ledger,
                &format!("{head} {}\n", celeriac_core::time::now_us()),
            );
        }
    }
}

fn append(ledger: &Mutex<std::fs::File>, line: &str) -> std::io::Result<()> {
    let mut f = ledger
        .lock()
        .map_err(|_| std::io::Error::other("ledger lock poisoned"))?;
    f.write_all(line.as_bytes())?;
    f.sync_data()
}
