//! End-to-end tests: the real `celeriac` binary against the real Redis at 127.0.0.1:6379
//! (or `CELERIAC_TEST_REDIS_URL`). Each test has its own key prefix and removes its keys when
//! it ends, so tests run in parallel and never touch anyone else's data.

mod http;
mod sql;
mod support;

mod acl;
mod bad_input;
mod bulk_enqueue;
mod chaos;
mod cli;
mod cli_ids;
mod cli_output;
mod cli_time;
mod crash;
mod cron;
mod deploy;
mod interop;
mod ledger;
mod lifecycle;
mod linkcheck;
mod links_cli;
mod partition;
mod poison;
mod shutdown;
mod store;
mod tls;
