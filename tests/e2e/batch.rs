//! Batches (ADR 0010) through real workers: exact counts, one completion whatever happens to
//! the children afterwards, idempotent adds, an empty batch, no child after the seal.

use crate::support::Env;
use celeriac_core::config::Config;
use celeriac_producer::{NewJob, Producer};
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

async fn producer(env: &Env) -> Producer {
    let config = Config::load(Some(env.config_path())).unwrap();
    Producer::connect(&config).await.unwrap()
}

fn child(batch: &str, i: usize, fail: bool) -> NewJob {
    let job = if fail {
        // Fails its first attempt, its only one: dead; run again by an operator, it succeeds.
        NewJob::new("fail", json!({"times": 1, "message": "no"})).max_attempts(1)
    } else {
        NewJob::new("noop", json!({}))
    };
    job.id(format!("{batch}:{i}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_completes_once_with_exact_counts() {
    let mut env = Env::new("");
    let p = producer(&env).await;
    let batch = p
        .batch("b1", "default")
        .on_complete(NewJob::new("noop", json!({"batch": "b1"})));
    let children: Vec<NewJob> = (0..250).map(|i| child("b1", i, i % 10 == 0)).collect();
    let added = batch.add(children.clone()).await.unwrap();
    assert_eq!((added.added, added.existing), (250, 0));
    // The parent runs again (a crash before the seal): nothing is added twice.
    let again = batch.add(children).await.unwrap();
    assert_eq!((again.added, again.existing), (0, 250));
    let sealed = batch.seal().await.unwrap();
    assert_eq!((sealed.total, sealed.completed_at_ms), (250, None));

    env.spawn_worker(&[]);
    let done = env.wait_final("b1:complete", T);
    assert_eq!(done["state"], "succeeded", "the completion job ran: {done}");
    let counts = batch.counts().await.unwrap().unwrap();
    assert_eq!(
        (
            counts.total,
            counts.succeeded,
            counts.dead,
            counts.cancelled,
            counts.pending
        ),
        (250, 225, 25, 0, 0),
        "{counts:?}"
    );
    assert!(counts.completed_at_ms.is_some());

    // After completion an operator retries a dead child (it succeeds now) and cancels a
    // finished one (nothing to cancel): the batch counts nothing again and does not complete
    // again.
    env.ok(&["jobs", "retry", "b1:0"]);
    assert_eq!(env.wait_final("b1:0", T)["state"], "succeeded");
    env.ok(&["jobs", "cancel", "b1:1"]);
    let after = batch.counts().await.unwrap().unwrap();
    assert_eq!(after, counts, "counted once, completed once");
    let completion = env.status("b1:complete");
    assert_eq!(completion["attempts"], 1, "{completion}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_batch_completes_at_once_and_a_sealed_batch_takes_no_child() {
    let mut env = Env::new("");
    let p = producer(&env).await;
    let batch = p
        .batch("empty", "default")
        .on_complete(NewJob::new("noop", json!({})));
    let counts = batch.seal().await.unwrap();
    assert_eq!(counts.total, 0);
    assert!(counts.completed_at_ms.is_some(), "{counts:?}");
    assert!(
        batch.seal().await.unwrap().completed_at_ms.is_some(),
        "sealing again is harmless"
    );
    let err = batch
        .add(vec![child("empty", 0, false)])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("sealed"), "{err}");
    env.spawn_worker(&[]);
    assert_eq!(env.wait_final("empty:complete", T)["state"], "succeeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn children_finished_before_the_seal_complete_it_and_cancels_count() {
    let mut env = Env::new("");
    let p = producer(&env).await;
    let batch = p
        .batch("early", "default")
        .on_complete(NewJob::new("noop", json!({})));
    batch
        .add((0..20).map(|i| child("early", i, false)).collect())
        .await
        .unwrap();
    let waiting = NewJob::new("noop", json!({}))
        .id("early:later")
        .delay(Duration::from_secs(3600));
    batch.add(vec![waiting]).await.unwrap();
    env.spawn_worker(&[]);
    for i in 0..20 {
        env.wait_final(&format!("early:{i}"), T);
    }
    let not_yet = env.cli(&["status", "early:complete"]);
    assert_eq!(
        not_yet.status.code(),
        Some(1),
        "no completion before the seal"
    );
    env.ok(&["jobs", "cancel", "early:later"]);
    let counts = batch.seal().await.unwrap();
    assert_eq!(
        (counts.total, counts.succeeded, counts.cancelled),
        (21, 20, 1),
        "{counts:?}"
    );
    assert!(counts.completed_at_ms.is_some(), "the seal completed it");
    assert_eq!(env.wait_final("early:complete", T)["state"], "succeeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn status_of_a_parent_shows_its_batch() {
    let env = Env::new("");
    let p = producer(&env).await;
    // The parent runs on its own queue; its children (and so the batch) on `default`.
    let parent = env.enqueue("noop", "{}", &["--id", "parent-1", "--queue", "parents"]);
    let batch = p.batch(parent.as_str(), "default");
    let later = |i: usize| {
        NewJob::new("noop", json!({}))
            .id(format!("parent-1:{i}"))
            .delay(Duration::from_secs(3600))
    };
    batch.add((0..3).map(later).collect()).await.unwrap();
    env.ok(&["jobs", "cancel", "parent-1:0"]);

    let shown = env.status("parent-1");
    assert_eq!(shown["queue"], "parents", "{shown}");
    let b = &shown["batch"];
    assert_eq!(
        (
            b["queue"].as_str(),
            b["total"].as_u64(),
            b["pending"].as_u64(),
            b["succeeded"].as_u64(),
            b["dead"].as_u64(),
            b["cancelled"].as_u64()
        ),
        (Some("default"), Some(3), Some(2), Some(0), Some(0), Some(1)),
        "{shown}"
    );
    assert!(
        b["created_at"].is_string() && b["completed_at"].is_null(),
        "{shown}"
    );
    let human = env.ok(&["status", "parent-1"]);
    assert!(
        human.contains("batch:") && human.contains("completed at") && human.contains("pending"),
        "{human}"
    );

    // The other two are cancelled and the batch sealed: it completes, and says when.
    env.ok(&["jobs", "cancel", "parent-1:1", "parent-1:2"]);
    batch.seal().await.unwrap();
    let done = env.status("parent-1");
    assert_eq!(done["batch"]["cancelled"], 3, "{done}");
    assert!(done["batch"]["completed_at"].is_string(), "{done}");

    // A job that created no batch shows none.
    let plain = env.enqueue("noop", "{}", &["--queue", "parents"]);
    assert!(env.status(&plain).get("batch").is_none());

    // A batch outlives a parent deleted after its retention: it is still shown.
    p.batch("gone-parent", "default")
        .add(vec![later(9).id("gone-parent:0")])
        .await
        .unwrap();
    let alone: serde_json::Value =
        serde_json::from_str(&env.ok(&["status", "gone-parent", "--json"])).unwrap();
    assert_eq!(alone["batch"]["total"], 1, "{alone}");
}
