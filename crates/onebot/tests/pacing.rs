//! Pacing and the circuit breaker through real Redis, measured where it matters: at the fake
//! server, from the arrival times it records. Each test has its own key prefix.

mod common;

use celeriac_onebot::fake::Fault;
use celeriac_onebot::keys::AccountKeys;
use celeriac_onebot::{
    Error, ErrorClass, Message, OneBot, OneBotConfig, Pacer, Reservation, SlotKind,
};
use common::*;
use redis::AsyncCommands;
use std::time::{Duration, Instant};

/// How much earlier than its slot a request may arrive: the two requests' own latencies
/// (Redis reply, timer, loopback HTTP) differ by this much at most on a busy machine.
/// How much later than planned a loaded 2-core machine may send a burst of reservations.
const LOAD_SLACK: Duration = Duration::from_secs(1);

fn config(rate: f64, kick_interval: Duration) -> OneBotConfig {
    OneBotConfig {
        rate,
        kick_interval,
        breaker_open_for: Duration::from_millis(300),
        ..Default::default()
    }
}

async fn send_four(bot: &impl OneBot) {
    for i in 0..4 {
        bot.send_group_msg(GROUP, Message::text(format!("{i}")))
            .await
            .unwrap();
    }
}

fn gaps(times: &[Instant]) -> Vec<Duration> {
    let mut times = times.to_vec();
    times.sort();
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

/// Arrivals spaced `interval` apart. The server sees arrival times, which the machine's load
/// can shift by tens of milliseconds either way, so one gap may look short when its first
/// request was late: each gap must be at least a quarter of the interval (a burst would show
/// gaps near zero), and the whole run must take all its intervals but one (so a rate even
/// slightly too fast cannot hide in the jitter of a long run).
fn assert_spaced(what: &str, times: &[Instant], interval: Duration) {
    let gaps = gaps(times);
    for gap in &gaps {
        assert!(
            *gap >= interval / 4,
            "{what} {gap:?} apart, want {interval:?}: {gaps:?}"
        );
    }
    let span: Duration = gaps.iter().sum();
    assert!(
        span + interval >= interval * gaps.len() as u32,
        "{what}: {} in {span:?}, want {:?}: {gaps:?}",
        times.len(),
        interval * gaps.len() as u32
    );
}

#[test]
fn the_projects_connection_type_fits() {
    // Single node or cluster: what celeriac-core hands out is accepted by the pacer.
    fn pacer<C: redis::aio::ConnectionLike + Clone + Send + Sync>(_: Option<Pacer<C>>) {}
    pacer::<celeriac_core::connection::Conn>(None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_sharing_redis_are_paced_together() {
    let fake = fake(None).await;
    let prefix = unique_prefix();
    let config = config(4.0, Duration::ZERO);
    let a = paced(&fake, &prefix, &config).await;
    let b = paced(&fake, &prefix, &config).await;
    tokio::join!(send_four(&a), send_four(&b));
    let calls = fake.calls();
    assert_eq!(calls.len(), 8);
    let times: Vec<Instant> = calls.iter().map(|c| c.at).collect();
    assert_spaced("requests", &times, config.interval());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pacing_the_same_load_arrives_at_once() {
    // The control for the test above: it would fail if pacing did nothing.
    let fake = fake(None).await;
    let config = OneBotConfig {
        pacing: false,
        ..config(4.0, Duration::ZERO)
    };
    let prefix = unique_prefix();
    let a = paced(&fake, &prefix, &config).await;
    let b = paced(&fake, &prefix, &config).await;
    let started = Instant::now();
    let (x, y) = tokio::join!(
        a.send_group_msg(GROUP, "a".into()),
        b.send_group_msg(GROUP, "b".into())
    );
    x.unwrap();
    y.unwrap();
    let calls = fake.calls();
    let (first, last) = (calls[0].at.min(calls[1].at), calls[0].at.max(calls[1].at));
    assert!(
        last - first < config.interval() / 2 && last - started < config.interval() * 4,
        "without pacing both arrive together: {:?} apart",
        last - first
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kicks_are_kick_interval_apart_and_messages_fill_the_gaps() {
    let members: Vec<i64> = (5001..5005).collect();
    let fake = fake(None).await;
    for &m in &members {
        fake.add_member(GROUP, m, celeriac_onebot::Role::Member);
    }
    let prefix = unique_prefix();
    // Room for three messages between two kicks: the four messages need not wait for four kicks.
    let config = config(5.0, Duration::from_millis(800));
    let kicker = paced(&fake, &prefix, &config).await;
    let sender = paced(&fake, &prefix, &config).await;
    let kicks = async {
        let all = members
            .iter()
            .map(|&m| kicker.set_group_kick(GROUP, m, false));
        for r in futures_util::future::join_all(all).await {
            r.unwrap();
        }
    };
    let sends = async {
        let all = (0..4).map(|i| sender.send_group_msg(GROUP, Message::text(format!("{i}"))));
        for r in futures_util::future::join_all(all).await {
            r.unwrap();
        }
    };
    tokio::join!(kicks, sends);

    let at = |action: &str| {
        fake.calls_of(action)
            .iter()
            .map(|c| c.at)
            .collect::<Vec<_>>()
    };
    let (kick_times, send_times) = (at("set_group_kick"), at("send_group_msg"));
    assert_eq!((kick_times.len(), send_times.len()), (4, 4));
    assert_spaced("kicks", &kick_times, config.kick_interval);
    let all: Vec<Instant> = kick_times.iter().chain(&send_times).copied().collect();
    assert_spaced("actions", &all, config.interval());
    // Messages took the free slots between kicks instead of queueing behind them.
    assert!(send_times.iter().max() < kick_times.iter().max());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reservations_are_each_counted_once() {
    let prefix = unique_prefix();
    // 100 ms apart: no slot passes (and is trimmed) before the test reads them all.
    let config = config(10.0, Duration::ZERO);
    let pacers: Vec<_> = futures_util::future::join_all(
        (0..4).map(|_| async { Pacer::new(redis().await, prefix.clone(), &config) }),
    )
    .await;
    let reservations = futures_util::future::join_all(
        (0..50).map(|i| pacers[i % pacers.len()].reserve(BOT, SlotKind::Action)),
    )
    .await;
    let mut waits: Vec<Duration> = reservations
        .into_iter()
        .map(|r| match r.unwrap() {
            Reservation::Wait(wait) => wait,
            open => panic!("{open:?}"),
        })
        .collect();
    waits.sort();
    // The waits are measured from each reservation's own moment on the Redis clock, and the
    // 50 reservations are spread over however long this machine takes to send them: the exact
    // spacing is checked on the stored slots below.
    assert!(
        waits[49] + LOAD_SLACK >= config.interval() * 49,
        "{:?}",
        waits[49]
    );
    let slots: Vec<(String, f64)> = redis()
        .await
        .zrange_withscores(AccountKeys::new(&prefix, BOT).pace, 0, -1)
        .await
        .unwrap();
    assert_eq!(slots.len(), 50, "one slot per reservation");
    let interval_us = config.interval().as_micros() as f64;
    for w in slots.windows(2) {
        assert!(w[1].1 - w[0].1 >= interval_us, "slots {w:?} too close");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_on_risk_control_fails_fast_and_closes() {
    let fake = fake(None).await;
    let prefix = unique_prefix();
    let config = config(100.0, Duration::ZERO);
    let bot = paced(&fake, &prefix, &config).await;
    let other_process = paced(&fake, &prefix, &config).await;

    fake.inject(
        "send_group_msg",
        Fault::failed(
            100,
            "SEND_MSG_API_ERROR",
            "send group message failed: blocked by server",
        )
        .times(1),
    );
    let e = bot.send_group_msg(GROUP, "1".into()).await.unwrap_err();
    assert!(matches!(e, Error::RiskControl { .. }), "{e}");
    let open = bot
        .pacer()
        .breaker(BOT)
        .await
        .unwrap()
        .expect("breaker open");
    assert!(open.remaining <= config.breaker_open_for);

    let received = fake.calls().len();
    for client in [&bot, &other_process] {
        let e = client.send_group_msg(GROUP, "2".into()).await.unwrap_err();
        assert!(matches!(e, Error::CircuitOpen { account: BOT, .. }), "{e}");
        assert_eq!(e.class(), ErrorClass::RiskControl);
        assert!(e.retry_after().unwrap() <= config.breaker_open_for);
        let e = client
            .set_group_kick(GROUP, MEMBERS[0], false)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::CircuitOpen { .. }), "{e}");
    }
    assert_eq!(
        fake.calls().len(),
        received,
        "nothing reached the server while open"
    );

    wait_until(Duration::from_secs(5), "the breaker to close", || async {
        bot.pacer().breaker(BOT).await.unwrap().is_none()
    })
    .await;
    bot.send_group_msg(GROUP, "3".into()).await.unwrap();
    assert_eq!(fake.calls().len(), received + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_opened_while_waiting_for_a_slot_stops_the_send() {
    let fake = fake(None).await;
    let prefix = unique_prefix();
    let config = OneBotConfig {
        breaker_open_for: Duration::from_secs(5),
        ..config(2.0, Duration::ZERO)
    };
    let bot = paced(&fake, &prefix, &config).await;
    // Two slots taken by someone else: our send waits about a second for the third.
    for _ in 0..2 {
        bot.pacer().reserve(BOT, SlotKind::Action).await.unwrap();
    }
    let send = tokio::spawn(async move {
        let result = bot.send_group_msg(GROUP, "late".into()).await;
        (result, bot)
    });
    let conn = redis().await;
    let pace = AccountKeys::new(&prefix, BOT).pace;
    wait_until(Duration::from_secs(5), "the send's reservation", || {
        let (mut conn, pace) = (conn.clone(), pace.clone());
        async move { conn.zcard::<_, usize>(&pace).await.unwrap() == 3 }
    })
    .await;
    let tripper = Pacer::new(redis().await, prefix.clone(), &config);
    tripper.trip(BOT).await.unwrap();

    let (result, bot) = send.await.unwrap();
    let e = result.unwrap_err();
    assert!(matches!(e, Error::CircuitOpen { .. }), "{e}");
    assert!(fake.calls().is_empty(), "the fake received nothing");
    bot.pacer().close(BOT).await.unwrap();
    assert!(bot.pacer().breaker(BOT).await.unwrap().is_none());
}
