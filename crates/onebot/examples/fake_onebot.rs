//! Run the fake OneBot v11 server by hand:
//!
//! ```sh
//! cargo run -p celeriac-onebot --features fake --example fake_onebot -- \
//!     --listen 127.0.0.1:5700 [--token TOKEN] [--self-id 10000]
//! ```
//!
//! It serves group 100 (the bot is an admin) with members 1001-1005, logs every request as it
//! arrives, and stops on Ctrl-C.

use celeriac_onebot::fake::FakeOneBot;
use celeriac_onebot::Role;
use std::net::SocketAddr;
use std::time::Duration;

fn usage() -> ! {
    eprintln!("usage: fake_onebot [--listen ADDR] [--token TOKEN] [--self-id N]");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut builder = FakeOneBot::builder();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        builder = match arg.as_str() {
            "--listen" => builder.listen(value.parse::<SocketAddr>().unwrap_or_else(|_| usage())),
            "--token" => builder.token(value),
            "--self-id" => builder.self_id(value.parse().unwrap_or_else(|_| usage())),
            _ => usage(),
        };
    }
    let members: Vec<(i64, Role)> = (1001..=1005).map(|u| (u, Role::Member)).collect();
    let fake = match builder.group(100, Role::Admin, &members).start().await {
        Ok(fake) => fake,
        Err(e) => {
            eprintln!("cannot listen: {e}");
            std::process::exit(1)
        }
    };
    println!(
        "fake OneBot v11 on {} (bot {}, group 100 with members 1001-1005); Ctrl-C stops it",
        fake.url(),
        fake.self_id()
    );
    let log = async {
        let mut seen = 0;
        loop {
            let calls = fake
                .wait_for_calls(seen + 1, Duration::from_secs(3600))
                .await;
            for call in &calls[seen..] {
                println!("{} {}", call.action, call.params);
            }
            seen = calls.len();
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = log => {}
    }
}
