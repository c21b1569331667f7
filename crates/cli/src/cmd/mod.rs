//! One file per subcommand.

pub mod cron;
pub mod enqueue;
pub mod fanout;
pub mod health;
pub mod jobs;
pub mod links;
pub mod migrate;
pub mod onebot;
pub mod queues;
pub mod status;
pub mod verification;
pub mod worker;
pub mod workers;
