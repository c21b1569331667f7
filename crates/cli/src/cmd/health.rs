//! `celeriac health`: ask a running worker's or scheduler's endpoint whether it is healthy, for
//! container health checks in an image with no shell and no curl.

use crate::output::{CliError, CliResult};
use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

/// GET a health endpoint (`[http] listen` of a running `celeriac worker` or `celeriac cron`)
/// and exit 0 when it answers 200, 1 otherwise.
///
/// Examples:
///   celeriac health                                   # http://127.0.0.1:9464/healthz
///   celeriac health --url http://127.0.0.1:9464/readyz
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The endpoint: http://HOST:PORT/PATH (plain HTTP).
    #[arg(
        long,
        default_value = "http://127.0.0.1:9464/healthz",
        value_name = "URL"
    )]
    url: String,

    /// How long to wait for the answer.
    #[arg(long, default_value = "5s", value_parser = crate::output::parse_duration, value_name = "DURATION")]
    timeout: Duration,
}

pub async fn run(args: Args) -> CliResult {
    let url = args.url.clone();
    let timeout = args.timeout;
    let status = tokio::task::spawn_blocking(move || get(&url, timeout))
        .await
        .map_err(|e| CliError::failed(anyhow::anyhow!(e)))?
        .map_err(|e| CliError::failed(anyhow::anyhow!("{}: {e}", args.url)))?;
    if status == 200 {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CliError::failed(anyhow::anyhow!(
            "{} answered {status}",
            args.url
        )))
    }
}

fn get(url: &str, timeout: Duration) -> std::io::Result<u16> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, m.to_string());
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("expected an http://HOST:PORT/PATH URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)?
        .next()
        .ok_or_else(|| bad("the host does not resolve"))?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    let n = s.read(&mut head)?;
    std::str::from_utf8(&head[..n])
        .ok()
        .and_then(|h| h.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("not an HTTP answer"))
}
