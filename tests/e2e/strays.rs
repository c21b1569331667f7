//! Nothing dropped silently: job keys written with `SET`, records whose state does not match
//! the index their id was pushed to, and active-set entries with no record are each counted,
//! logged once, shown by `celeriac queues` and listed and settled by `celeriac jobs strays`.

use crate::support::Env;
use celeriac_testkit::wait_until;
use redis::Commands;
use serde_json::Value;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn envelope(id: &str) -> String {
    format!(
        r#"{{"v":1,"id":"{id}","kind":"noop","queue":"default","payload":{{}},"created_at":1700000000000}}"#
    )
}

#[test]
fn strays_are_counted_logged_once_listed_and_settled() {
    let mut env = Env::new("");
    let mut con = env.redis();
    let job = |id: &str| env.key("default", &format!("job:{id}"));
    let pending = env.key("default", "pending");
    // An envelope written with SET instead of HSET.
    let _: () = con.set(job("with-set"), envelope("with-set")).unwrap();
    let _: () = con.lpush(&pending, "with-set").unwrap();
    // A delayed job pushed to the pending list instead of the scheduled set.
    let _: () = con
        .hset_multiple(
            job("wrong-index"),
            &[
                ("msg", envelope("wrong-index").as_str()),
                ("state", "scheduled"),
            ],
        )
        .unwrap();
    let _: () = con.lpush(&pending, "wrong-index").unwrap();
    // A finished record pushed again: it would never be deleted by retention.
    let _: () = con
        .hset_multiple(
            job("finished"),
            &[
                ("msg", envelope("finished").as_str()),
                ("state", "succeeded"),
            ],
        )
        .unwrap();
    let _: () = con.lpush(&pending, "finished").unwrap();
    // An id in the active set whose record is gone (evicted, deleted by hand).
    let _: () = con
        .zadd(env.key("default", "active"), "vanished", 1_000)
        .unwrap();
    let _: () = con
        .sadd(format!("{}:queues", env.prefix), "default")
        .unwrap();

    env.spawn_worker(&[]);
    wait_until(T, "three strays to be noted", || {
        env.queue("default")["strays"] == 3
    });
    let vanished = env.wait_final("vanished", T);
    assert_eq!(vanished["reason"], "schema_error", "{vanished}");
    assert!(
        vanished["last_error"]
            .as_str()
            .unwrap()
            .contains("record is gone"),
        "{vanished}"
    );

    // Each logged once, by the worker that found it.
    let log = env.worker(0).log_text();
    for id in ["with-set", "wrong-index", "finished", "vanished"] {
        let n = log
            .lines()
            .filter(|l| l.contains(&format!("job=\"{id}\"")))
            .count();
        assert_eq!(n, 1, "{id} logged once:\n{log}");
    }
    let human = env.ok(&["queues"]);
    assert!(
        human.contains("queue default: 3 strays") && human.contains("jobs strays --queue default"),
        "{human}"
    );

    // Listed with what was found and what the key holds now.
    let list: Value =
        serde_json::from_str(&env.ok(&["jobs", "strays", "--queue", "default", "--json"])).unwrap();
    let by_id = |id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not listed: {list}"))
    };
    let set = by_id("with-set");
    assert_eq!(
        (set["what"].as_str(), set["found"].as_str()),
        (Some("wrong_type"), Some("string"))
    );
    assert!(
        set["now"]
            .as_str()
            .unwrap()
            .starts_with(r#"string: {"v":1"#),
        "{set}"
    );
    let misplaced = by_id("wrong-index");
    assert_eq!(
        (
            misplaced["what"].as_str(),
            misplaced["index"].as_str(),
            misplaced["found"].as_str()
        ),
        (Some("wrong_index"), Some("pending"), Some("scheduled"))
    );
    assert_eq!(misplaced["now"], "hash, state scheduled, in no index");
    env.ok(&["jobs", "strays", "--queue", "default"]);

    // Settled: the waiting record and the SET envelope become dead records an operator can
    // run; the finished one goes back to its retention index.
    let done: Value = serde_json::from_str(
        &env.ok(&["jobs", "strays", "--queue", "default", "--repair", "--json"]),
    )
    .unwrap();
    let action = |id: &str| {
        done.as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .map(|r| r["action"].clone())
    };
    assert_eq!(action("with-set"), Some("converted".into()), "{done}");
    assert_eq!(
        action("wrong-index"),
        Some("dead_lettered".into()),
        "{done}"
    );
    assert_eq!(action("finished"), Some("reindexed".into()), "{done}");
    assert_eq!(env.queue("default")["strays"], 0);
    let score: Option<f64> = con
        .zscore(env.key("default", "succeeded"), "finished")
        .unwrap();
    assert!(score.is_some(), "back in the succeeded index");
    for id in ["with-set", "wrong-index"] {
        assert_eq!(env.status(id)["reason"], "schema_error", "{id}");
        env.ok(&["jobs", "retry", id]);
        assert_eq!(
            env.wait_final(id, T)["state"],
            "succeeded",
            "{id} runs once fixed"
        );
    }
}

#[test]
fn an_id_pushed_twice_is_no_stray() {
    let mut env = Env::new("");
    let id = env.enqueue("noop", "{}", &["--delay", "1h"]);
    // A cancelled pending job's id stays in the list; a scheduled job's id pushed to the
    // pending list by mistake, and an id pushed twice, leave extra entries.
    let cancelled = env.enqueue("noop", "{}", &[]);
    env.ok(&["jobs", "cancel", &cancelled]);
    let _: () = env
        .redis()
        .lpush(env.key("default", "pending"), &id)
        .unwrap();
    let twice = env.enqueue("noop", "{}", &[]);
    let _: () = env
        .redis()
        .lpush(env.key("default", "pending"), &twice)
        .unwrap();
    env.spawn_worker(&[]);
    assert_eq!(env.wait_final(&twice, T)["attempts"], 1);
    wait_until(T, "the pending list to be drained", || {
        let n: usize = env.redis().llen(env.key("default", "pending")).unwrap();
        n == 0
    });
    // Each record is in the index of its state: the extra entries were leftovers.
    let q = env.queue("default");
    assert_eq!(q["strays"], 0, "{q}");
    assert_eq!(env.status(&id)["state"], "scheduled");
    assert_eq!(env.status(&cancelled)["state"], "cancelled");
}
