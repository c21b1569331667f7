//! `celeriac migrate`.

use crate::domains;
use crate::output::{CliError, CliResult};
use crate::settings::Settings;
use celeriac_core::config::redact_url;
use std::process::ExitCode;

/// Create or upgrade the domain database at `database_url` (SQLite by default,
/// ./data/celeriac.db) with every domain's migrations. Workers do this before the first job
/// that needs the database, and the domain commands on start; run it on its own before a
/// deploy to see the result.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(settings: Settings, _args: Args) -> CliResult {
    let url = &settings.db.database_url;
    let db = celeriac_db::Db::connect(url)
        .await
        .map_err(CliError::failed)?;
    let applied = db
        .migrate(&domains::migrations())
        .await
        .map_err(CliError::failed)?;
    let url = redact_url(url);
    if applied.is_empty() {
        println!("{url}: up to date");
    } else {
        let versions: Vec<String> = applied.iter().map(i64::to_string).collect();
        println!("{url}: applied migration(s) {}", versions.join(", "));
    }
    db.close().await;
    Ok(ExitCode::SUCCESS)
}
