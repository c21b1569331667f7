//! End-to-end tests: the real `celeriac` binary against the real Redis at 127.0.0.1:6379
//! (or `CELERIAC_TEST_REDIS_URL`). Each test has its own key prefix and removes its keys when
//! it ends, so tests run in parallel and never touch anyone else's data. The helpers that do
//! not need the binary (private Redis servers, key prefixes, databases, the HTTP test server,
//! waits) are in `celeriac-testkit`.

mod support;

mod acl;
mod bad_bytes;
mod bad_input;
mod batch;
mod bulk_enqueue;
mod chaos;
mod chaos_fanout;
mod chaos_redis;
mod cli;
mod cli_ids;
mod cli_output;
mod cli_time;
mod crash;
mod cron;
mod deploy;
mod deploy_image;
mod domains;
mod fanout;
mod interop;
mod ledger;
mod lifecycle;
mod linkcheck;
mod links_cli;
mod observe;
mod outage_log;
mod partition;
mod poison;
mod redaction;
mod shutdown;
mod store;
mod strays;
mod tls;
mod verification;
mod verification_restart;
mod wire_limits;
mod worker_stop;
