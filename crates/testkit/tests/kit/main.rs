//! The testkit's own tests: each helper against the real service it wraps.

mod db;
mod http;
mod keyspace;
mod net;
mod redis_server;
mod wait;
