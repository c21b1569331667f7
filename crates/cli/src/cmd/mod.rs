//! One file per subcommand.

pub mod cron;
pub mod enqueue;
pub mod health;
pub mod jobs;
pub mod links;
pub mod migrate;
pub mod queues;
pub mod status;
pub mod worker;
pub mod workers;
