//! `database_url`: where domain data lives.

use celeriac_core::config::{redact_url, FieldError, Section};
use serde::Deserialize;

/// The database used when nothing is configured: a SQLite file beside the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/celeriac.db";

/// The top-level `database_url` key.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DbConfig {
    /// `sqlite://PATH` (embedded) or `postgres://USER@HOST:PORT/DB`.
    pub database_url: String,
}

impl Default for DbConfig {
    fn default() -> Self {
        DbConfig {
            database_url: DEFAULT_DATABASE_URL.into(),
        }
    }
}

impl Section for DbConfig {
    const NAME: &'static str = "";
    const KEYS: &'static [&'static str] = &["database_url"];
    const STRING_FIELDS: &'static [&'static str] = &["database_url"];

    fn validate(&self) -> Result<(), FieldError> {
        let db = self.database_url.to_ascii_lowercase();
        if !["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|s| db.starts_with(s))
        {
            return Err(FieldError::new(
                "database_url",
                format!(
                    "{:?}: expected sqlite://PATH (embedded) or postgres://USER@HOST:PORT/DB",
                    redact_url(&self.database_url)
                ),
            ));
        }
        Ok(())
    }
}
