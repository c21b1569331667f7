//! The access token never shows: not in any error's `Display` or `Debug` — every variant the
//! client can produce, including from a server that echoes the token back — nor in the
//! client's or the config's `Debug`, nor in a log line.

mod common;

use celeriac_onebot::fake::Fault;
use celeriac_onebot::{
    Error, HttpClient, Message, OneBot, OneBotConfig, PacedClient, Pacer, Secret,
};
use common::*;
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

const TOKEN: &str = "tok-3f9a7c1e-SECRET";

/// Collects every log line of the test.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every error the client (and the paced client) can be made to produce, with the token set
/// and the server echoing it wherever a server could.
async fn every_error() -> Vec<Error> {
    let fake = fake(Some(TOKEN)).await;
    let bot = client(&fake, Some(TOKEN));
    let echo = |code: &str| Fault::failed(100, code, &format!("token {TOKEN} echoed")).times(1);
    let mut errors = Vec::new();
    for code in [
        "MEMBER_NOT_FOUND",
        "NOT_MANAGEABLE",
        "GROUP_NOT_FOUND",
        "SEND_MSG_API_ERROR",
        "API_ERROR",
    ] {
        fake.inject("send_group_msg", echo(code));
        errors.push(bot.send_group_msg(GROUP, "x".into()).await.unwrap_err());
    }
    fake.inject(
        "send_group_msg",
        Fault::status("failed", 1200, &format!("Timeout {TOKEN}")).times(1),
    );
    errors.push(bot.send_group_msg(GROUP, "x".into()).await.unwrap_err());
    fake.inject("get_login_info", Fault::http(404).times(1));
    errors.push(bot.get_login_info().await.unwrap_err());
    fake.inject("get_login_info", Fault::http(500).times(1));
    errors.push(bot.get_login_info().await.unwrap_err());
    fake.inject(
        "get_login_info",
        Fault::reply(json!(format!("Bearer {TOKEN}"))).times(1),
    );
    errors.push(bot.get_login_info().await.unwrap_err());
    fake.inject(
        "get_login_info",
        Fault::reply(json!({"status": TOKEN})).times(1),
    );
    errors.push(bot.get_login_info().await.unwrap_err());
    let data = json!({"status": "ok", "retcode": 0, "data": {"user_id": TOKEN}});
    fake.inject("get_login_info", Fault::reply(data).times(1));
    errors.push(bot.get_login_info().await.unwrap_err());
    fake.inject("get_login_info", Fault::drop_connection().times(1));
    errors.push(bot.get_login_info().await.unwrap_err());
    fake.inject(
        "get_login_info",
        Fault::delay(Duration::from_secs(3)).times(1),
    );
    let impatient = client_with_timeout(&fake, Some(TOKEN), Duration::from_millis(100));
    errors.push(impatient.get_login_info().await.unwrap_err());
    let wrong = format!("{TOKEN}-wrong");
    errors.push(
        client(&fake, Some(&wrong))
            .get_login_info()
            .await
            .unwrap_err(),
    );
    errors.push(client(&fake, None).get_login_info().await.unwrap_err());
    errors.push(
        HttpClient::new(
            "http://x",
            Some(Secret::new(format!("{TOKEN}\n"))),
            Duration::from_secs(1),
        )
        .unwrap_err(),
    );
    // Through the paced client: a trip on an echoed risk-control reply, then the open breaker.
    let config = OneBotConfig {
        access_token: Some(Secret::new(TOKEN)),
        breaker_open_for: Duration::from_secs(1),
        rate: 100.0,
        ..Default::default()
    };
    let paced = PacedClient::new(
        bot,
        Pacer::new(redis().await, unique_prefix(), &config),
        BOT,
    );
    fake.inject("send_private_msg", echo("SEND_MSG_API_ERROR"));
    errors.push(
        paced
            .send_private_msg(1, Message::text(TOKEN))
            .await
            .unwrap_err(),
    );
    errors.push(paced.send_private_msg(1, "x".into()).await.unwrap_err());
    assert!(matches!(errors.last(), Some(Error::CircuitOpen { .. })));
    // The variants nothing above produced, built by hand.
    errors.push(Error::InvalidEvent("x".into()));
    errors.push(Error::BadSignature("x"));
    errors.push(Error::Redis(redis::RedisError::from(
        std::io::Error::other("x"),
    )));
    errors.push(Error::CircuitOpen {
        account: BOT,
        until: SystemTime::now(),
        remaining: Duration::from_secs(1),
    });
    errors
}

#[test]
fn the_token_never_shows() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let errors = tracing::subscriber::with_default(subscriber, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(every_error())
    });

    let kinds: std::collections::BTreeSet<String> = errors
        .iter()
        .map(|e| {
            format!("{e:?}")
                .split([' ', '('])
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kinds.len(), 15, "every variant is covered: {kinds:?}");
    for e in &errors {
        for text in [e.to_string(), format!("{e:?}"), format!("{e:#?}")] {
            assert!(!text.contains(TOKEN), "{text}");
        }
    }

    let config = OneBotConfig {
        access_token: Some(Secret::new(TOKEN)),
        secret: Some(Secret::new(TOKEN)),
        ..Default::default()
    };
    let client = HttpClient::from_config(&config).unwrap();
    for text in [
        format!("{config:?}"),
        format!("{client:?}"),
        format!("{client:#?}"),
    ] {
        assert!(!text.contains(TOKEN), "{text}");
    }
    assert!(format!("{client:?}").contains("<redacted>"));

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("OneBot action failed"),
        "the client logged: {logs}"
    );
    assert!(
        logs.contains("risk control"),
        "the paced client logged: {logs}"
    );
    assert!(!logs.contains(TOKEN), "{logs}");
}
