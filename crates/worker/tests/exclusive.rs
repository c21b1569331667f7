//! `exclusive`: one run at a time under a renewed lock in a real Redis — held while a run
//! outlives its lease, lost when someone else takes it, freed at the end of a run and when a
//! held lock is dropped.

use celeriac_core::Broker;
use celeriac_testkit::{wait_until_async, Keyspace};
use celeriac_worker::exclusive::Exclusive;
use std::time::Duration;

const TTL: Duration = Duration::from_millis(300);

async fn broker(ks: &Keyspace) -> Broker {
    Broker::connect(ks.url(), ks.prefix()).await.unwrap()
}

#[tokio::test]
async fn a_run_longer_than_the_lease_keeps_the_lock_and_frees_it_at_the_end() {
    let ks = Keyspace::new(&celeriac_testkit::test_redis_url());
    let b = broker(&ks).await;
    let held = Exclusive::try_acquire_as(&b, "daily", "run-1", TTL)
        .await
        .unwrap()
        .expect("a free lock");
    let other = b.clone();
    // The work lasts three leases: only renewals keep the lock, and nobody else gets it.
    let out = held
        .run(async move {
            for _ in 0..6 {
                tokio::time::sleep(TTL / 2).await;
                let taken = Exclusive::try_acquire_as(&other, "daily", "run-2", TTL)
                    .await
                    .unwrap();
                assert!(taken.is_none(), "the lock was free while its run went on");
            }
            42
        })
        .await
        .expect("the lock was kept");
    assert_eq!(out, 42);
    // Released at once, not after its lease.
    let next = Exclusive::try_acquire_as(&b, "daily", "run-2", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(next.is_some(), "released when the run ended");
}

#[tokio::test]
async fn a_lost_lock_stops_the_run() {
    let ks = Keyspace::new(&celeriac_testkit::test_redis_url());
    let b = broker(&ks).await;
    let held = Exclusive::try_acquire_as(&b, "group:1", "run-1", TTL)
        .await
        .unwrap()
        .unwrap();
    // Someone else owns it now (an operator, or a run after this one's lease expired).
    let mut con = ks.connection();
    let key = ks.key("lock:group:1");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("intruder")
        .query(&mut con)
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let lost = held
        .run(async move {
            // Never ends on its own: only losing the lock stops it.
            let _keep = tx;
            std::future::pending::<()>().await
        })
        .await
        .expect_err("the run must stop");
    assert!(lost.to_string().contains("group:1"), "{lost}");
    assert!(rx.await.is_err(), "the work was dropped");
    // The intruder's lock is left alone.
    let owner: String = redis::cmd("GET").arg(&key).query(&mut con).unwrap();
    assert_eq!(owner, "intruder");
}

#[tokio::test]
async fn a_dropped_lock_is_released_without_waiting_for_its_lease() {
    let ks = Keyspace::new(&celeriac_testkit::test_redis_url());
    let b = broker(&ks).await;
    let held = Exclusive::try_acquire_as(&b, "scan", "run-1", Duration::from_secs(600))
        .await
        .unwrap()
        .unwrap();
    drop(held);
    wait_until_async(
        Duration::from_secs(10),
        "the dropped lock to be free",
        || async {
            Exclusive::try_acquire_as(&b, "scan", "run-2", Duration::from_secs(600))
                .await
                .unwrap()
                .is_some()
        },
    )
    .await;
}
