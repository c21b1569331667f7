use celeriac_testkit::{free_port, wait_until, wait_until_async};
use std::time::Duration;

#[test]
fn wait_until_returns_once_the_condition_holds() {
    let mut calls = 0;
    wait_until(Duration::from_secs(5), "the fifth call", || {
        calls += 1;
        calls == 5
    });
    assert_eq!(calls, 5);
}

#[test]
#[should_panic(expected = "timed out after 100ms waiting for the impossible")]
fn wait_until_times_out_naming_what_it_waited_for() {
    wait_until(Duration::from_millis(100), "the impossible", || false);
}

#[tokio::test(start_paused = true)]
async fn wait_until_async_returns_once_the_condition_holds() {
    let mut calls = 0;
    wait_until_async(Duration::from_secs(5), "the third call", || {
        calls += 1;
        let done = calls == 3;
        async move { done }
    })
    .await;
    assert_eq!(calls, 3);
}

/// On Tokio's paused clock a minute passes at once: the deadline is on that clock.
#[tokio::test(start_paused = true)]
#[should_panic(expected = "timed out after 60s waiting for the async impossible")]
async fn wait_until_async_times_out_on_tokio_time() {
    wait_until_async(Duration::from_secs(60), "the async impossible", || async {
        false
    })
    .await;
}

#[test]
fn free_port_can_be_bound() {
    let port = free_port();
    assert_ne!(port, 0);
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the free port binds");
}
