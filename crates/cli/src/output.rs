//! Output helpers shared by the subcommands: errors with exit codes, the one writer of
//! standard output, JSON, tables, durations.
//!
//! Everything a command prints on standard output goes through [`write_out`] (the [`outln!`]
//! macro, [`print_json`]): when the reader has gone (`celeriac jobs list … | head -1`), the
//! command ends quietly with exit 0 instead of panicking on the broken pipe.

mod table;

pub use table::{escape, free, table, Cell, Table};

use std::io::Write;
use std::process::ExitCode;

/// An error and the exit code it maps to (1 failed / not found, 2 usage).
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub error: anyhow::Error,
}

impl CliError {
    /// Bad usage: exit 2.
    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        CliError {
            code: 2,
            error: error.into(),
        }
    }

    /// Not found or failed: exit 1.
    pub fn failed(error: impl Into<anyhow::Error>) -> Self {
        CliError {
            code: 1,
            error: error.into(),
        }
    }
}

impl From<anyhow::Error> for CliError {
    fn from(error: anyhow::Error) -> Self {
        CliError::failed(error)
    }
}

impl From<celeriac_core::Error> for CliError {
    fn from(error: celeriac_core::Error) -> Self {
        match error {
            celeriac_core::Error::InvalidQueue { .. }
            | celeriac_core::Error::InvalidKind { .. }
            | celeriac_core::Error::InvalidId { .. }
            | celeriac_core::Error::Json(_)
            | celeriac_core::Error::RunAtOutOfRange { .. }
            | celeriac_core::Error::AmbiguousId { .. }
            | celeriac_core::Error::ConfigValue { .. } => CliError::usage(error),
            _ => CliError::failed(error),
        }
    }
}

/// Result of a subcommand.
pub type CliResult = Result<ExitCode, CliError>;

/// Write to standard output, flushed. When the reader has closed the pipe the process exits
/// quietly with 0 (it got what it asked for); any other write error exits 1 with a message.
/// Use [`outln!`] rather than `println!`, which panics on a closed pipe.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        stdout_failed(&e);
    }
}

/// End the process after a failed write to standard output (see [`write_out`]).
pub fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write to standard output: {e}");
    std::process::exit(1);
}

/// `println!` through [`write_out`]: quiet on a closed pipe.
macro_rules! outln {
    () => {
        $crate::output::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;

/// Print a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| CliError::failed(anyhow::anyhow!(e)))?;
    outln!("{text}");
    Ok(())
}

/// `-` for a missing value.
pub fn or_dash(v: Option<&str>) -> String {
    v.map(str::to_string).unwrap_or_else(|| "-".into())
}

/// Parse a duration flag such as `30s`, `500ms`, `2h`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}; expected a duration like 500ms, 30s, 5m or 2h"))
}

/// Human form of milliseconds (`1m 12s`).
pub fn human_ms(ms: u64) -> String {
    let d = std::time::Duration::from_millis(if ms >= 1000 { ms / 1000 * 1000 } else { ms });
    humantime::format_duration(d).to_string()
}

/// Connect to Redis for a CLI command, with a message that says what to check.
pub async fn broker(
    config: &celeriac_core::config::Config,
) -> Result<celeriac_core::Broker, CliError> {
    celeriac_core::Broker::from_config(config)
        .await
        .map_err(|e| {
            CliError::failed(anyhow::anyhow!(
                "cannot connect to Redis at {}: {e}",
                celeriac_core::config::redact_url(&config.redis_url)
            ))
        })
}

/// The links tables of the domain database, migrated, with a message that says what to check.
pub async fn store(database_url: &str) -> Result<celeriac_links::Store, CliError> {
    let db = celeriac_db::Db::open(database_url, &crate::domains::migrations())
        .await
        .map_err(CliError::failed)?;
    Ok(celeriac_links::Store::new(db))
}

/// The workers' retry policy, for the attempts shown of jobs whose envelope does not say.
static POLICY: std::sync::OnceLock<celeriac_worker::Settings> = std::sync::OnceLock::new();

/// Set the policy [`inspector`] shows (once, at start).
pub fn set_policy(settings: &celeriac_worker::Settings) {
    let _ = POLICY.set(settings.clone());
}

/// An inspector over a fresh connection.
pub async fn inspector(
    config: &celeriac_core::config::Config,
) -> Result<celeriac_core::inspector::Inspector, CliError> {
    Ok(inspector_on(broker(config).await?))
}

/// An inspector over `broker`, showing the workers' retry policy.
pub fn inspector_on(broker: celeriac_core::Broker) -> celeriac_core::inspector::Inspector {
    let policy = POLICY.get().cloned().unwrap_or_default();
    celeriac_core::inspector::Inspector::new(
        broker,
        std::sync::Arc::new(move |kind: &str| policy.policy(kind).max_attempts),
    )
    .with_warnings(std::sync::Arc::new(|message: &str| {
        // In `worker` and `cron` (whose health endpoint reads the queues) warnings join the
        // log; in the other commands they go to stderr.
        if tracing::dispatcher::has_been_set() {
            tracing::warn!("{message}");
        } else {
            eprintln!("warning: {}", escape(message));
        }
    }))
}
