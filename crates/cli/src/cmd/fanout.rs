//! `celeriac fanout`: topics and subscribers, sending a broadcast, its results, and retrying
//! its failed deliveries. The work is done by the fanout crate and the jobs it registers.

use crate::output::{
    free, inspector, or_dash, outln as println, parse_duration, print_json, table, Cell, CliError,
    CliResult,
};
use crate::settings::Settings;
use celeriac_core::time::rfc3339_ms_signed as rfc3339;
use celeriac_fanout::sign::Secret;
use celeriac_fanout::store::Results;
use celeriac_fanout::{BroadcastJob, Channel, Deliver, Recipient, Store};
use celeriac_producer::{NewJob, Producer};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How often `send --wait` looks at the results.
const WAIT_POLL: Duration = Duration::from_millis(200);

/// Topics, subscribers and broadcasts (database_url; Redis for sending).
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Topics with their active and total subscribers.
    #[command(after_help = "Examples:
  celeriac fanout topics
  celeriac fanout topics --json")]
    Topics(JsonArgs),
    /// Subscribe a recipient to TOPIC (created if new); subscribing again re-activates a
    /// disabled or unsubscribed one. A webhook without --secret gets one generated, printed
    /// once: give it to the receiver, which verifies each request's signature with it.
    #[command(
        after_help = "Exit codes: 0 subscribed, 1 database error, 2 bad usage (URL, secret, number).

Examples:
  celeriac fanout subscribe news --webhook https://hooks.example.com/celeriac
  celeriac fanout subscribe news --webhook https://hooks.example.com/x --secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
  celeriac fanout subscribe news --onebot-user 123456789
  celeriac fanout subscribe news --onebot-group 100200300"
    )]
    Subscribe(SubscribeArgs),
    /// Unsubscribe a recipient from TOPIC: it receives nothing more, and its deliveries of
    /// broadcasts still running end `skipped`.
    #[command(
        after_help = "Exit codes: 0 unsubscribed, 1 not subscribed, 2 bad usage.

Examples:
  celeriac fanout unsubscribe news --webhook https://hooks.example.com/celeriac
  celeriac fanout unsubscribe news --onebot-user 123456789"
    )]
    Unsubscribe(TargetArgs),
    /// The subscribers of TOPIC: status, consecutive failures, when and why disabled.
    #[command(after_help = "Exit codes: 0 listed, 1 no such topic.

Examples:
  celeriac fanout subscribers news
  celeriac fanout subscribers news --json")]
    Subscribers(TopicArgs),
    /// Broadcast a message to TOPIC's active subscribers (enqueues fanout.broadcast; prints
    /// the broadcast id). With --wait, shows progress until every delivery has ended.
    #[command(
        after_help = "Exit codes: 0 enqueued (with --wait: every delivery delivered or skipped),
1 with --wait some delivery failed or --timeout passed, or Redis/database errors, 2 bad usage.

Examples:
  celeriac fanout send news --message \"release 1.2 is out\"
  celeriac fanout send news --message \"maintenance at 22:00\" --id maint-2026-11-29 --wait"
    )]
    Send(SendArgs),
    /// A broadcast's results: delivered, failed, skipped, pending, the failed recipients with
    /// their last error, and its batch.
    #[command(after_help = "Exit codes: 0 found, 1 no such broadcast.

Examples:
  celeriac fanout status maint-2026-11-29
  celeriac fanout status maint-2026-11-29 --json")]
    Status(StatusArgs),
    /// Run a broadcast's failed deliveries once more (one attempt each). The batch has
    /// counted them already: its counters do not change; the broadcast's results do.
    #[command(
        after_help = "Exit codes: 0 done (also when nothing failed), 1 no such broadcast or errors.

Examples:
  celeriac fanout retry-failed maint-2026-11-29"
    )]
    RetryFailed(StatusArgs),
}

#[derive(Debug, clap::Args)]
pub struct JsonArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
#[group(id = "target", required = true, multiple = false)]
pub struct Target {
    /// A webhook URL (http:// or https://).
    #[arg(long, value_name = "URL", group = "target")]
    webhook: Option<String>,
    /// A QQ user, sent private messages through [onebot].
    #[arg(long, value_name = "QQ", group = "target")]
    onebot_user: Option<i64>,
    /// A QQ group, sent group messages through [onebot].
    #[arg(long, value_name = "GROUP", group = "target")]
    onebot_group: Option<i64>,
}

impl Target {
    fn channel_target(&self) -> (Channel, String) {
        match (&self.webhook, self.onebot_user, self.onebot_group) {
            (Some(url), _, _) => (Channel::Webhook, url.clone()),
            (_, Some(u), _) => (Channel::OnebotUser, u.to_string()),
            (_, _, Some(g)) => (Channel::OnebotGroup, g.to_string()),
            _ => unreachable!("clap requires one target"),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct SubscribeArgs {
    /// The topic.
    topic: String,
    #[command(flatten)]
    target: Target,
    /// The webhook's secret, whsec_<base64> [default: a new one, printed].
    #[arg(
        long,
        value_name = "SECRET",
        requires = "webhook",
        env = "CELERIAC_FANOUT_SECRET",
        hide_env_values = true
    )]
    secret: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct TargetArgs {
    /// The topic.
    topic: String,
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, clap::Args)]
pub struct TopicArgs {
    /// The topic.
    topic: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The topic.
    topic: String,
    /// The message.
    #[arg(long, value_name = "TEXT")]
    message: String,
    /// The broadcast's id (sending again with the same id enqueues nothing new) [default: a
    /// new UUIDv7].
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// Queue of the broadcast and its deliveries.
    #[arg(long, default_value = "default", value_name = "Q")]
    queue: String,
    /// Wait until every delivery has ended, showing progress on stderr.
    #[arg(long)]
    wait: bool,
    /// With --wait: give up after this long.
    #[arg(long, default_value = "5m", value_parser = parse_duration, requires = "wait", value_name = "DURATION")]
    timeout: Duration,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The broadcast id.
    id: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn failed(e: celeriac_fanout::Error) -> CliError {
    match e {
        celeriac_fanout::Error::Invalid(_) => CliError::usage(e),
        e => CliError::failed(e),
    }
}

pub async fn run(settings: Settings, command: Command) -> CliResult {
    let store = Store::new(
        celeriac_db::Db::open(&settings.db.database_url, &crate::domains::migrations())
            .await
            .map_err(CliError::failed)?,
    );
    let result = match command {
        Command::Topics(a) => topics(&store, a.json).await,
        Command::Subscribe(a) => subscribe(&store, a).await,
        Command::Unsubscribe(a) => unsubscribe(&store, a).await,
        Command::Subscribers(a) => subscribers(&store, a).await,
        Command::Send(a) => send(&settings, &store, a).await,
        Command::Status(a) => status(&settings, &store, a).await,
        Command::RetryFailed(a) => retry_failed(&settings, &store, a).await,
    };
    store.close().await;
    result
}

async fn topics(store: &Store, json: bool) -> CliResult {
    let topics = store.topics().await.map_err(failed)?;
    if json {
        print_json(&topics)?;
        return Ok(ExitCode::SUCCESS);
    }
    if topics.is_empty() {
        println!("no topics yet (`celeriac fanout subscribe TOPIC …` creates one)");
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&["topic", "active", "subscribers"]);
    for x in &topics {
        t.add_row(vec![
            Cell::from(x.name.as_str()),
            x.active.to_string().into(),
            x.subscribers.to_string().into(),
        ]);
    }
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}

async fn subscribe(store: &Store, a: SubscribeArgs) -> CliResult {
    let (channel, target) = a.target.channel_target();
    let generated = (channel == Channel::Webhook && a.secret.is_none()).then(Secret::generate);
    let secret = a
        .secret
        .clone()
        .or_else(|| generated.as_ref().map(Secret::to_text));
    let r = Recipient {
        channel,
        target,
        secret,
    };
    r.validate()
        .map_err(|e| CliError::usage(anyhow::anyhow!(e)))?;
    let s = store.subscribe(&a.topic, &r).await.map_err(failed)?;
    println!(
        "subscriber {} of {}: {} {}",
        s.id, s.topic, s.channel, s.target
    );
    if let Some(g) = generated {
        println!(
            "secret: {} (shown once; the receiver verifies signatures with it, see docs/fanout.md)",
            g.to_text()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn unsubscribe(store: &Store, a: TargetArgs) -> CliResult {
    let (channel, target) = a.target.channel_target();
    if store
        .unsubscribe(&a.topic, channel, &target)
        .await
        .map_err(failed)?
    {
        println!("unsubscribed {channel} {target} from {}", a.topic);
        return Ok(ExitCode::SUCCESS);
    }
    Err(CliError::failed(anyhow::anyhow!(
        "{channel} {target} is not subscribed to {} (see `celeriac fanout subscribers {}`)",
        a.topic,
        a.topic
    )))
}

async fn subscribers(store: &Store, a: TopicArgs) -> CliResult {
    let Some(subs) = store.subscribers(&a.topic).await.map_err(failed)? else {
        return Err(CliError::failed(celeriac_fanout::Error::NoTopic(a.topic)));
    };
    if a.json {
        let view: Vec<serde_json::Value> = subs
            .iter()
            .map(|s| {
                serde_json::json!({
                    "id": s.id, "topic": s.topic, "channel": s.channel, "target": s.target,
                    "status": s.status, "consecutive_failures": s.consecutive_failures,
                    "last_error": s.last_error, "disabled_at": s.disabled_at.map(rfc3339),
                    "disabled_reason": s.disabled_reason, "created_at": rfc3339(s.created_at),
                })
            })
            .collect();
        print_json(&view)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&[
        "id",
        "channel",
        "target",
        "status",
        "failures",
        "disabled",
        "last error",
    ]);
    for s in &subs {
        t.add_row(vec![
            s.id.to_string().into(),
            s.channel.as_str().into(),
            s.target.as_str().into(),
            s.status.as_str().into(),
            s.consecutive_failures.to_string().into(),
            or_dash(s.disabled_at.map(rfc3339).as_deref()).into(),
            free(or_dash(
                s.disabled_reason.as_deref().or(s.last_error.as_deref()),
            )),
        ]);
    }
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}

async fn send(settings: &Settings, store: &Store, a: SendArgs) -> CliResult {
    if store.subscribers(&a.topic).await.map_err(failed)?.is_none() {
        return Err(CliError::failed(celeriac_fanout::Error::NoTopic(a.topic)));
    }
    let producer = Producer::connect(settings.core())
        .await
        .map_err(CliError::from)?;
    let payload = BroadcastJob {
        topic: Some(a.topic.clone()),
        message: a.message,
        ..BroadcastJob::default()
    };
    let mut job =
        NewJob::new(celeriac_fanout::BROADCAST_KIND, serde_json::json!(payload)).queue(a.queue);
    if let Some(id) = &a.id {
        job = job.id(id.clone());
    }
    let id = producer.enqueue(job).await.map_err(CliError::from)?.id;
    println!("{id}");
    if !a.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let live = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let deadline = Instant::now() + a.timeout;
    loop {
        let b = store.broadcast(&id).await.map_err(failed)?;
        let r = store.results(&id).await.map_err(failed)?;
        if live {
            eprint!("\r{}\x1b[K", progress(&r, b.as_ref().map(|b| b.total)));
        }
        if b.as_ref().is_some_and(|b| b.completed_at.is_some()) {
            if live {
                eprintln!();
            }
            println!("{}", progress(&r, b.map(|b| b.total)));
            return Ok(if r.failed > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            });
        }
        if Instant::now() >= deadline {
            if live {
                eprintln!();
            }
            return Err(CliError::failed(anyhow::anyhow!(
                "broadcast {id} did not complete within {} ({}); `celeriac fanout status {id}` shows it later",
                humantime::format_duration(a.timeout),
                progress(&r, b.map(|b| b.total))
            )));
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

fn progress(r: &Results, total: Option<i64>) -> String {
    format!(
        "delivered {}, failed {}, skipped {}, pending {} of {}",
        r.delivered,
        r.failed,
        r.skipped,
        r.pending,
        total.map(|t| t.to_string()).unwrap_or_else(|| "?".into())
    )
}

async fn status(settings: &Settings, store: &Store, a: StatusArgs) -> CliResult {
    let Some(b) = store.broadcast(&a.id).await.map_err(failed)? else {
        return Err(CliError::failed(celeriac_fanout::Error::NoBroadcast(a.id)));
    };
    let r = store.results(&a.id).await.map_err(failed)?;
    let batch = inspector(settings.core())
        .await?
        .batch(&a.id, Some(&b.queue))
        .await?;
    if a.json {
        print_json(&serde_json::json!({
            "id": b.id, "topic": b.topic, "queue": b.queue, "message": b.message,
            "total": b.total, "created_at": rfc3339(b.created_at),
            "completed_at": b.completed_at.map(rfc3339),
            "delivered": r.delivered, "failed": r.failed, "skipped": r.skipped, "pending": r.pending,
            "failed_recipients": r.failed_recipients.iter().map(|d| serde_json::json!({
                "recipient": d.recipient, "subscriber_id": d.subscriber_id, "channel": d.channel,
                "target": d.target, "attempts": d.attempts, "last_status": d.last_status,
                "last_error": d.last_error, "response": d.response,
            })).collect::<Vec<_>>(),
            "batch": batch,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "broadcast {} to {} ({} recipients), created {}, {}",
        b.id,
        b.topic.as_deref().unwrap_or("a list"),
        b.total,
        rfc3339(b.created_at),
        b.completed_at
            .map(|t| format!("completed {}", rfc3339(t)))
            .unwrap_or_else(|| "running".into())
    );
    println!("{}", progress(&r, Some(b.total)));
    if let Some(x) = &batch {
        println!(
            "batch on {}: {} children, {} pending, {} succeeded, {} dead, {} cancelled",
            x.queue, x.total, x.pending, x.succeeded, x.dead, x.cancelled
        );
    }
    if !r.failed_recipients.is_empty() {
        let mut t = table(&[
            "recipient",
            "channel",
            "target",
            "attempts",
            "status",
            "last error",
        ]);
        for d in &r.failed_recipients {
            t.add_row(vec![
                d.recipient.as_str().into(),
                d.channel.as_str().into(),
                d.target.as_str().into(),
                d.attempts.to_string().into(),
                or_dash(d.last_status.map(|s| s.to_string()).as_deref()).into(),
                free(or_dash(d.last_error.as_deref())),
            ]);
        }
        println!("{t}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn retry_failed(settings: &Settings, store: &Store, a: StatusArgs) -> CliResult {
    let Some(b) = store.broadcast(&a.id).await.map_err(failed)? else {
        return Err(CliError::failed(celeriac_fanout::Error::NoBroadcast(a.id)));
    };
    let keys = store.reopen_failed(&a.id).await.map_err(failed)?;
    if keys.is_empty() {
        println!("no failed delivery in broadcast {}", a.id);
        return Ok(ExitCode::SUCCESS);
    }
    let deliveries: Vec<Deliver> = keys
        .into_iter()
        .map(|k| Deliver {
            broadcast: a.id.clone(),
            recipient: k,
        })
        .collect();
    let ids: Vec<String> = deliveries.iter().map(Deliver::job_id).collect();
    let repairs = inspector(settings.core())
        .await?
        .retry(&ids, Some(&b.queue))
        .await?;
    // Jobs already deleted (their retention passed) are enqueued again under the same id.
    let producer = Producer::connect(settings.core())
        .await
        .map_err(CliError::from)?;
    let mut again = 0;
    for (d, r) in deliveries.iter().zip(&repairs) {
        if r.previous.is_none() {
            let job = NewJob::new(celeriac_fanout::DELIVER_KIND, serde_json::json!(d))
                .id(d.job_id())
                .queue(b.queue.clone())
                .max_attempts(1);
            producer.enqueue(job).await.map_err(CliError::from)?;
            again += 1;
        }
    }
    println!(
        "{} failed deliveries of {} run again ({} re-enqueued after their job was deleted)",
        deliveries.len(),
        a.id,
        again
    );
    Ok(ExitCode::SUCCESS)
}
