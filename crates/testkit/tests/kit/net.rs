//! Needs root and iproute2, as the partition scenarios do.

use celeriac_testkit::{free_port, wait_until, Net, RedisServer};
use std::process::Command;
use std::time::Duration;

/// `redis-cli PING` to the host's end, from inside the namespace (bounded: a cut link never
/// answers).
fn ping_from(net: &Net, port: u16) -> bool {
    let out = Command::new("timeout")
        .arg("2")
        .args(net.exec())
        .args([
            "redis-cli",
            "-h",
            &net.host_ip,
            "-p",
            &port.to_string(),
            "PING",
        ])
        .output()
        .expect("run redis-cli in the namespace");
    String::from_utf8_lossy(&out.stdout).trim() == "PONG"
}

fn has_namespace(name: &str) -> bool {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

#[test]
fn a_namespace_reaches_the_host_until_cut_and_again_once_healed() {
    let net = Net::new(free_port());
    let ns = net.exec()[3].to_string();
    assert!(has_namespace(&ns));
    let redis = RedisServer::builder()
        .bind(&["127.0.0.1", &net.host_ip])
        .args(["--protected-mode", "no"])
        .start();
    assert!(ping_from(&net, redis.port), "no PONG across the veth pair");

    let cut = net.cut();
    assert!(!ping_from(&net, redis.port), "PONG across a cut link");
    let heal = net.heal();
    assert!(cut < heal);
    wait_until(Duration::from_secs(10), "PONG after the heal", || {
        ping_from(&net, redis.port)
    });

    drop(net);
    assert!(!has_namespace(&ns), "{ns} outlived its Net");
}
