//! `celeriac migrate`.

use crate::output::{CliError, CliResult};
use celeriac_core::config::{redact_url, Config};
use std::process::ExitCode;

/// Create or upgrade the domain database at `database_url` (SQLite by default,
/// ./data/celeriac.db). Workers and the `links` commands do this on start too; run it on its
/// own before a deploy to see the result.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(config: Config, _args: Args) -> CliResult {
    let store = celeriac_store::Store::connect(&config.database_url)
        .await
        .map_err(CliError::failed)?;
    let applied = store.migrate().await.map_err(CliError::failed)?;
    let url = redact_url(&config.database_url);
    if applied.is_empty() {
        println!("{url}: up to date");
    } else {
        let versions: Vec<String> = applied.iter().map(i64::to_string).collect();
        println!("{url}: applied migration(s) {}", versions.join(", "));
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
