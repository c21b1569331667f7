//! Configuration in layers: built-in defaults < a TOML file < `CELERIAC_*` environment
//! variables < command-line flags. Every part of Celeriac owns its sections ([`Section`]): it
//! asks [`Layers::section`] for them, and the program that assembles the parts calls
//! [`Layers::refuse_unclaimed`] so that a key nobody reads is an error, not a silent no-op.
//!
//! Environment variables are `CELERIAC_` plus the setting's path in upper case, sections joined
//! by `__`: `CELERIAC_REDIS_URL`, `CELERIAC_WORKER__CONCURRENCY=32`. A value is read as an
//! integer or a boolean when it looks like one, as a comma-separated list for the fields a
//! section lists in [`Section::LIST_FIELDS`], and as text otherwise (always for
//! [`Section::STRING_FIELDS`]). Variables naming no section are ignored (`CELERIAC_CONFIG`).

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A part of the configuration owned by one part of Celeriac: a table (`[worker]`) or, with an
/// empty [`Section::NAME`], a few keys at the top level (`redis_url`, `prefix`, …).
pub trait Section: DeserializeOwned + Default {
    /// The table's name in the file, or `""` for keys at the top level.
    const NAME: &'static str;
    /// With an empty [`Section::NAME`]: the top-level keys this section owns.
    const KEYS: &'static [&'static str] = &[];
    /// Fields (dotted, relative to the section) whose environment value is a comma-separated
    /// list, e.g. `queues`.
    const LIST_FIELDS: &'static [&'static str] = &[];
    /// Fields whose environment value is always text, never a number or a boolean.
    const STRING_FIELDS: &'static [&'static str] = &[];

    /// Check every value; the error names the field as written in the file.
    fn validate(&self) -> std::result::Result<(), FieldError> {
        Ok(())
    }
}

/// A value out of range: the field as written in the file (`worker.concurrency`) and what is
/// expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field.
    pub field: String,
    /// What is wrong and what is expected.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<FieldError> for Error {
    fn from(e: FieldError) -> Error {
        Error::ConfigValue {
            field: e.field,
            message: e.message,
        }
    }
}

/// One environment variable, split into its path.
#[derive(Clone, Debug)]
struct EnvVar {
    path: Vec<String>,
    value: String,
}

/// The layers, before any part reads its sections.
#[derive(Debug)]
pub struct Layers {
    /// Defaults set by the program, under the file.
    defaults: toml::Table,
    file: toml::Table,
    source: PathBuf,
    env: Vec<EnvVar>,
    flags: Vec<(Vec<String>, toml::Value)>,
    /// Top-level keys some section owns.
    claimed: Mutex<BTreeSet<String>>,
}

impl Layers {
    /// The file at `path` (if any) and this process's `CELERIAC_*` environment.
    pub fn load(path: Option<&Path>) -> Result<Layers> {
        Self::load_with_env(path, std::env::vars())
    }

    /// [`Layers::load`] with an explicit environment (for tests).
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Layers> {
        let file = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
                    path: path.to_path_buf(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| Error::ConfigParse {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    })?
            }
            None => toml::Table::new(),
        };
        let env = env
            .into_iter()
            .filter_map(|(name, value)| {
                let rest = name.strip_prefix("CELERIAC_")?;
                let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
                (!path.iter().any(String::is_empty)).then_some(EnvVar { path, value })
            })
            .collect();
        Ok(Layers {
            defaults: toml::Table::new(),
            file,
            source: path
                .map(Path::to_path_buf)
                .unwrap_or_else(|| "<environment>".into()),
            env,
            flags: Vec::new(),
            claimed: Mutex::new(BTreeSet::new()),
        })
    }

    /// A built-in default for the dotted `key`, under the file (a list from the file replaces
    /// it whole).
    pub fn set_default(&mut self, key: &str, value: toml::Value) {
        insert(&mut self.defaults, &split(key), value, false);
    }

    /// A command-line flag: overrides every other layer.
    pub fn set_flag(&mut self, key: &str, value: impl Into<toml::Value>) {
        self.flags.push((split(key), value.into()));
    }

    /// Section `S`: its defaults, the file, the environment and the flags laid over each
    /// other, deserialized and validated.
    pub fn section<S: Section>(&self) -> Result<S> {
        let mut table = toml::Table::new();
        let owns = |key: &str| {
            if S::NAME.is_empty() {
                S::KEYS.contains(&key)
            } else {
                key == S::NAME
            }
        };
        for source in [&self.defaults, &self.file] {
            for (k, v) in source.iter().filter(|(k, _)| owns(k)) {
                insert(&mut table, std::slice::from_ref(k), v.clone(), true);
            }
        }
        for var in self.env.iter().filter(|v| owns(&v.path[0])) {
            let field = if S::NAME.is_empty() {
                var.path.join(".")
            } else {
                var.path[1..].join(".")
            };
            let value = parse_env_value::<S>(&field, &var.value);
            insert(&mut table, &var.path, value, true);
        }
        for (path, value) in self.flags.iter().filter(|(p, _)| owns(&p[0])) {
            insert(&mut table, path, value.clone(), true);
        }
        let value = if S::NAME.is_empty() {
            toml::Value::Table(table)
        } else {
            table
                .remove(S::NAME)
                .unwrap_or_else(|| toml::Value::Table(toml::Table::new()))
        };
        let section = S::deserialize(value).map_err(|e| Error::ConfigParse {
            path: self.source.clone(),
            message: if S::NAME.is_empty() {
                e.to_string()
            } else {
                format!("in [{}]: {e}", S::NAME)
            },
        })?;
        section.validate()?;
        if let Ok(mut claimed) = self.claimed.lock() {
            if S::NAME.is_empty() {
                claimed.extend(S::KEYS.iter().map(|k| k.to_string()));
            } else {
                claimed.insert(S::NAME.to_string());
            }
        }
        Ok(section)
    }

    /// Fail on a top-level key of the file, or an environment variable's section, that no
    /// section read: a misspelt or misplaced setting would otherwise do nothing silently.
    /// Environment variables that name nothing known are left alone (they may be meant for
    /// something else, like `CELERIAC_CONFIG`).
    pub fn refuse_unclaimed(&self) -> Result<()> {
        let claimed = self.claimed.lock().map(|c| c.clone()).unwrap_or_default();
        if let Some(key) = self.file.keys().find(|k| !claimed.contains(*k)) {
            return Err(Error::ConfigParse {
                path: self.source.clone(),
                message: format!(
                    "unknown setting `{key}`: nothing in Celeriac reads it (known: {})",
                    claimed.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            });
        }
        Ok(())
    }
}

fn split(key: &str) -> Vec<String> {
    key.split('.').map(str::to_string).collect()
}

/// Set `path` in `table` to `value`; with `overwrite` false, only if nothing is there yet.
/// Tables met on the way are merged key by key, anything else is replaced whole.
fn insert(table: &mut toml::Table, path: &[String], value: toml::Value, overwrite: bool) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = table;
    for segment in parents {
        let entry = node
            .entry(segment.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(next) = entry else {
            return;
        };
        node = next;
    }
    match (node.get_mut(last), value) {
        (Some(toml::Value::Table(old)), toml::Value::Table(new)) => {
            for (k, v) in new {
                insert(old, &[k], v, overwrite);
            }
        }
        (Some(_), _) if !overwrite => {}
        (_, value) => {
            node.insert(last.clone(), value);
        }
    }
}

fn parse_env_value<S: Section>(field: &str, value: &str) -> toml::Value {
    if S::LIST_FIELDS.contains(&field) {
        return toml::Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        );
    }
    if S::STRING_FIELDS.contains(&field) {
        return toml::Value::String(value.to_string());
    }
    if let Ok(v) = value.parse::<i64>() {
        return toml::Value::Integer(v);
    }
    if let Ok(v) = value.parse::<bool>() {
        return toml::Value::Boolean(v);
    }
    toml::Value::String(value.to_string())
}
