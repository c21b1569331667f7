//! `celeriac links`: the friend links `links.check` checks, and the results of its runs.

use crate::output::{or_dash, outln as println, print_json, store, table, CliError, CliResult};
use crate::settings::Settings;
use celeriac_core::config::redact_url;
use celeriac_links::import::{self, Format};
use celeriac_links::store::{LinkResult, NewLink};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

/// Manage friend links (kept in the database at `database_url`) and read check results.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Add a link.
    #[command(after_help = "Examples:
  celeriac links add --name Alice --url https://alice.example/friends
  celeriac links add --name Bob --url https://bob.example/ --inactive")]
    Add(AddArgs),
    /// List every link with its state: shown or hidden, why, last status and check time.
    #[command(
        after_help = "Exit codes: 0 listed (also when there are no links), 1 database error.

Examples:
  celeriac links list
  celeriac links list --json"
    )]
    List(ListArgs),
    /// Remove a link by name (exit 1 if there is none).
    #[command(after_help = "Examples:
  celeriac links remove Alice")]
    Remove(RemoveArgs),
    /// Add or update links from a CSV or JSON-lines file, all or nothing.
    ///
    /// CSV: a header naming the columns name, url and optionally is_active (true/false), or no
    /// header and the columns name,url[,is_active]. JSON lines: one
    /// {"name": …, "url": …, "is_active": …} per line. Links are matched by name: new names are
    /// added, known ones get the file's URL and activity. A bad line stops the import and names
    /// the line; nothing is written then.
    #[command(
        verbatim_doc_comment,
        after_help = "Exit codes: 0 imported, 1 a bad line or a database error (nothing written).

Examples:
  celeriac links import friends.csv
  celeriac links import friends.txt --format jsonl"
    )]
    Import(ImportArgs),
    /// Recent check runs with their counts, newest first.
    #[command(after_help = "Examples:
  celeriac links runs
  celeriac links runs --limit 5 --json")]
    Runs(RunsArgs),
    /// The result of every link in one check run (the newest by default).
    #[command(after_help = "Examples:
  celeriac links results
  celeriac links results --problems")]
    Results(ResultsArgs),
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// Unique name (the whitelist of links.check refers to it).
    #[arg(long)]
    name: String,
    /// The page to check: an absolute http:// or https:// URL.
    #[arg(long)]
    url: String,
    /// Keep the link but do not check it.
    #[arg(long)]
    inactive: bool,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print JSON: name, url (a password in it redacted), is_active, is_show,
    /// not_show_reason, last_status, last_checked_at.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// Name of the link.
    name: String,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The file (.csv, or .jsonl / .ndjson / .json for JSON lines).
    file: PathBuf,
    /// The file's format, when its extension does not say.
    #[arg(long, value_parser = ["csv", "jsonl"])]
    format: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct RunsArgs {
    /// How many runs.
    #[arg(long, default_value_t = 20)]
    limit: i64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ResultsArgs {
    /// Run id (from `celeriac links runs` or the job's result); the newest run by default.
    run: Option<i64>,
    /// Only the links that failed or changed.
    #[arg(long)]
    problems: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// One link as `links list --json` prints it.
#[derive(Serialize)]
struct LinkView {
    name: String,
    url: String,
    is_active: bool,
    is_show: bool,
    not_show_reason: String,
    last_status: Option<u16>,
    last_checked_at: Option<String>,
}

pub async fn run(settings: Settings, command: Command) -> CliResult {
    let store = store(&settings.db.database_url).await?;
    match command {
        Command::Add(a) => {
            let link = store
                .add_link(&NewLink {
                    name: a.name,
                    url: a.url,
                    is_active: !a.inactive,
                })
                .await
                .map_err(store_error)?;
            println!(
                "added {:?} ({}{})",
                link.name,
                redact_url(&link.url),
                if link.is_active { "" } else { ", inactive" }
            );
        }
        Command::List(a) => list(&store, a.json).await?,
        Command::Remove(a) => {
            if !store.remove_link(&a.name).await.map_err(store_error)? {
                return Err(CliError::failed(anyhow::anyhow!(
                    "no link named {:?} (see `celeriac links list`)",
                    a.name
                )));
            }
            println!("removed {:?}", a.name);
        }
        Command::Import(a) => {
            let format = match a.format.as_deref() {
                Some("csv") => Format::Csv,
                Some(_) => Format::JsonLines,
                None => Format::from_path(&a.file).ok_or_else(|| {
                    CliError::usage(anyhow::anyhow!(
                        "cannot tell the format of {} from its extension; pass --format csv or --format jsonl",
                        a.file.display()
                    ))
                })?,
            };
            let text = std::fs::read_to_string(&a.file).map_err(|e| {
                CliError::usage(anyhow::anyhow!("cannot read {}: {e}", a.file.display()))
            })?;
            let links = import::parse(&text, format).map_err(|e| {
                CliError::usage(anyhow::anyhow!(
                    "{}: {e}; nothing imported",
                    a.file.display()
                ))
            })?;
            let s = store.import_links(&links).await.map_err(store_error)?;
            println!(
                "{} links read: {} added, {} updated, {} unchanged",
                links.len(),
                s.added,
                s.updated,
                s.unchanged
            );
        }
        Command::Runs(a) => runs(&store, a).await?,
        Command::Results(a) => results(&store, a).await?,
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn list(store: &celeriac_links::Store, json: bool) -> Result<(), CliError> {
    let links = store.list_links().await.map_err(store_error)?;
    if json {
        let view: Vec<LinkView> = links
            .iter()
            .map(|l| LinkView {
                name: l.name.clone(),
                url: redact_url(&l.url),
                is_active: l.is_active,
                is_show: l.is_show,
                not_show_reason: l.not_show_reason.clone(),
                last_status: l.last_status,
                last_checked_at: l.last_checked_at(),
            })
            .collect();
        return print_json(&view);
    }
    if links.is_empty() {
        println!("no links (add one with `celeriac links add --name NAME --url URL`)");
        return Ok(());
    }
    let mut t = table(&[
        "name",
        "url",
        "active",
        "shown",
        "reason",
        "last status",
        "last checked",
    ]);
    for l in &links {
        t.add_row(vec![
            l.name.clone(),
            redact_url(&l.url),
            yes_no(l.is_active),
            yes_no(l.is_show),
            or_dash(Some(l.not_show_reason.as_str()).filter(|r| !r.is_empty())),
            l.last_status
                .map(|s| s.to_string())
                .or(l.last_error_kind.clone().filter(|k| k != "ok"))
                .unwrap_or_else(|| "-".into()),
            or_dash(l.last_checked_at().as_deref()),
        ]);
    }
    println!("{t}");
    Ok(())
}

async fn runs(store: &celeriac_links::Store, a: RunsArgs) -> Result<(), CliError> {
    if a.limit < 1 {
        return Err(CliError::usage(anyhow::anyhow!(
            "--limit must be at least 1"
        )));
    }
    let runs = store.runs(a.limit).await.map_err(store_error)?;
    if a.json {
        return print_json(&runs);
    }
    if runs.is_empty() {
        println!("no check runs yet (enqueue one with `celeriac enqueue links.check`)");
        return Ok(());
    }
    let mut t = table(&[
        "run", "state", "started", "finished", "active", "checked", "failed", "hidden", "shown",
    ]);
    for r in &runs {
        t.add_row(vec![
            r.id.to_string(),
            r.state.clone(),
            r.started_at.clone(),
            or_dash(r.finished_at.as_deref()),
            r.counts.active_num.to_string(),
            r.counts.checked.to_string(),
            r.counts.failed.to_string(),
            r.counts.to_not_show.to_string(),
            r.counts.to_show.to_string(),
        ]);
    }
    println!("{t}");
    Ok(())
}

async fn results(store: &celeriac_links::Store, a: ResultsArgs) -> Result<(), CliError> {
    let Some(run) = store.run(a.run).await.map_err(store_error)? else {
        return Err(CliError::failed(anyhow::anyhow!(match a.run {
            Some(id) => format!("no check run {id} (old runs are deleted beyond links.keep_runs; see `celeriac links runs`)"),
            None => "no check runs yet (enqueue one with `celeriac enqueue links.check`)".into(),
        })));
    };
    let results: Vec<LinkResult> = store
        .results(run.id, a.problems)
        .await
        .map_err(store_error)?
        .into_iter()
        .map(redacted)
        .collect();
    if a.json {
        return print_json(&serde_json::json!({ "run": run, "results": results }));
    }
    println!(
        "run {} ({}), started {}: {} checked, {} failed, {} hidden, {} shown",
        run.id,
        run.state,
        run.started_at,
        run.counts.checked,
        run.counts.failed,
        run.counts.to_not_show,
        run.counts.to_show
    );
    if results.is_empty() {
        return Ok(());
    }
    let mut t = table(&[
        "name", "url", "outcome", "status", "change", "tries", "ms", "detail",
    ]);
    for r in &results {
        t.add_row(vec![
            r.name.clone(),
            r.url.clone(),
            r.outcome.clone(),
            r.status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            or_dash(r.change.as_deref()),
            r.attempts.to_string(),
            r.elapsed_ms.to_string(),
            r.error
                .clone()
                .or(r.final_url.as_ref().map(|u| format!("→ {u}")))
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    println!("{t}");
    Ok(())
}

/// `r` with the password of its URLs redacted, in the error text too (which may quote them).
fn redacted(mut r: LinkResult) -> LinkResult {
    if let Some(error) = &mut r.error {
        for url in [Some(&r.url), r.final_url.as_ref()].into_iter().flatten() {
            *error = error.replace(url.as_str(), &redact_url(url));
        }
    }
    r.url = redact_url(&r.url);
    r.final_url = r.final_url.as_deref().map(redact_url);
    r
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

fn store_error(e: celeriac_links::Error) -> CliError {
    match e {
        celeriac_links::Error::Invalid(_) | celeriac_links::Error::DuplicateName(_) => {
            CliError::usage(e)
        }
        _ => CliError::failed(e),
    }
}
