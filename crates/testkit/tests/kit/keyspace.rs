//! Against the shared test Redis (never flushed): only this test's prefixes are touched.

use celeriac_testkit::{test_redis_url, unique_prefix, Keyspace};
use redis::Commands;

#[test]
fn prefixes_are_unique_and_name_the_process() {
    let (a, b) = (unique_prefix(), unique_prefix());
    assert_ne!(a, b);
    let pid = std::process::id().to_string();
    assert!(a.starts_with(&format!("celeriac-test-{pid}-")), "{a}");
    let ks = Keyspace::new(&test_redis_url());
    assert_eq!(
        ks.key("{q}:pending"),
        format!("{}:{{q}}:pending", ks.prefix())
    );
    assert_eq!(ks.url(), test_redis_url());
}

#[test]
fn dropping_a_keyspace_deletes_its_keys_and_only_those() {
    let mine = Keyspace::new(&test_redis_url());
    let other = Keyspace::new(&test_redis_url());
    let mut con = mine.connection();
    // Different hash tags: different slots on a cluster, one DEL each.
    let keys = [mine.key("{a}:x"), mine.key("{b}:y"), mine.key("z")];
    for k in &keys {
        let _: () = con.set(k, "1").unwrap();
    }
    let _: () = con.hset(mine.key("{c}:h"), "f", "v").unwrap();
    let _: () = con.set(other.key("kept"), "1").unwrap();
    let mut listed = mine.keys().unwrap();
    listed.sort();
    assert_eq!(listed.len(), 4, "{listed:?}");

    drop(mine);
    for k in keys {
        assert!(
            !con.exists::<_, bool>(&k).unwrap(),
            "{k} survived its keyspace"
        );
    }
    assert!(con.exists::<_, bool>(other.key("kept")).unwrap());
    assert_eq!(other.keys().unwrap(), vec![other.key("kept")]);
    other.clear().unwrap();
    assert!(other.keys().unwrap().is_empty());
}
