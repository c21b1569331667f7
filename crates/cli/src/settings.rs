//! The whole configuration of the `celeriac` binary: every part's sections, laid over each
//! other (built-in defaults < the `--config` file < `CELERIAC_*` environment < flags), and a
//! key no part reads refused with its name. `config/default.toml` lists every setting with its
//! built-in value (a test compares the whole structure).

use crate::domains;
use celeriac_core::config::{Config, FieldError, Layers, Section};
use serde::Deserialize;
use std::path::Path;

/// Everything `celeriac` reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Core (Redis, `[jobs]`, `[retention]`) and the worker's sections.
    pub worker: celeriac_worker::Settings,
    /// `[cron]`.
    pub cron: celeriac_cron::CronConfig,
    /// `database_url`.
    pub db: celeriac_db::DbConfig,
    /// `[log]`.
    pub log: LogConfig,
    /// `[http]`: the health and metrics endpoint.
    pub http: crate::http::HttpConfig,
    /// Every domain's sections.
    pub domains: domains::Configs,
}

impl Settings {
    /// The built-in defaults, then the file at `path`, the environment and `flags`
    /// (`(dotted key, value)`).
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &[(&str, toml::Value)],
    ) -> celeriac_core::Result<Settings> {
        let mut layers = Layers::load_with_env(path, env)?;
        let schedules = toml::Value::try_from(domains::default_schedules()).map_err(|e| {
            celeriac_core::Error::Protocol(format!("the default schedules do not encode: {e}"))
        })?;
        layers.set_default("cron.schedules", schedules);
        for (key, value) in flags {
            layers.set_flag(key, value.clone());
        }
        let settings = Settings {
            worker: celeriac_worker::Settings::from_layers(&layers)?
                .with_defaults(domains::kind_defaults()),
            cron: layers.section()?,
            db: layers.section()?,
            log: layers.section()?,
            http: layers.section()?,
            domains: domains::Configs::from_layers(&layers)?,
        };
        layers.refuse_unclaimed()?;
        settings.worker.check_kinds()?;
        Ok(settings)
    }

    /// Core's settings.
    pub fn core(&self) -> &Config {
        &self.worker.core
    }
}

/// `[log]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `celeriac_worker=debug,info`.
    pub level: String,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

impl Section for LogConfig {
    const NAME: &'static str = "log";
    const STRING_FIELDS: &'static [&'static str] = &["level", "format"];

    fn validate(&self) -> Result<(), FieldError> {
        // What an EnvFilter accepts in the common cases: comma-separated `target=level` or
        // `level` directives.
        for directive in self
            .level
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            let lvl = directive.rsplit('=').next().unwrap_or(directive);
            if !["trace", "debug", "info", "warn", "error", "off"]
                .contains(&lvl.to_ascii_lowercase().as_str())
            {
                return Err(FieldError::new(
                    "log.level",
                    format!(
                        "{:?} is not a log filter; try info, debug or warn",
                        self.level
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> Vec<(String, String)> {
        Vec::new()
    }

    #[test]
    fn the_shipped_default_toml_equals_the_built_in_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/default.toml");
        let shipped = Settings::load(Some(&path), none(), &[]).unwrap();
        let built_in = Settings::load(None, none(), &[]).unwrap();
        assert_eq!(shipped, built_in);
        assert_eq!(built_in.cron.schedules, domains::default_schedules());
        // The domains' defaults of their kinds are there, as in a worker's registry.
        assert_eq!(built_in.worker.policy("fanout.deliver").max_attempts, 8);
        assert!(built_in.worker.policy("fanout.deliver").schedule.is_some());
    }

    #[test]
    fn a_jitter_alone_moves_the_domain_schedule() {
        let file =
            std::env::temp_dir().join(format!("celeriac-jitter-{}.toml", std::process::id()));
        std::fs::write(&file, "[kinds.\"fanout.deliver\"]\nretry_jitter = 0.1\n").unwrap();
        let s = Settings::load(Some(&file), none(), &[]).unwrap();
        let _ = std::fs::remove_file(&file);
        let schedule = s.worker.policy("fanout.deliver").schedule.unwrap();
        assert_eq!((schedule.delays.len(), schedule.jitter), (8, 0.1));
    }

    #[test]
    fn every_section_is_claimed_and_typos_are_refused() {
        let dir = std::env::temp_dir().join(format!("celeriac-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("typo.toml");
        std::fs::write(
            &file,
            "[links]\nconcurrency = 8\n[linsk]\nconcurrency = 3\n",
        )
        .unwrap();
        let err = Settings::load(Some(&file), none(), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`linsk`"), "{err}");
        let env = vec![
            (
                "CELERIAC_LINKS__ALLOWED_NETWORKS".into(),
                "127.0.0.1/32, fd00::/8".into(),
            ),
            ("CELERIAC_LINKS__WHITELIST".into(), "Ours,Partner".into()),
            ("CELERIAC_DATABASE_URL".into(), "postgres://u@h/db".into()),
            (
                "CELERIAC_LOG__LEVEL".into(),
                "celeriac_worker=debug,info".into(),
            ),
        ];
        let s = Settings::load(None, env, &[("prefix", "flagged".into())]).unwrap();
        assert_eq!(s.domains.links.allowed_networks.len(), 2);
        assert_eq!(s.domains.links.whitelist, ["Ours", "Partner"]);
        assert_eq!(s.db.database_url, "postgres://u@h/db");
        assert_eq!(s.log.level, "celeriac_worker=debug,info");
        assert_eq!(s.core().prefix, "flagged");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn bad_values_name_their_field() {
        let dir =
            std::env::temp_dir().join(format!("celeriac-settings-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (i, (text, field)) in [
            ("database_url = \"mysql://x\"\n", "database_url"),
            ("[links]\nconcurrency = 0\n", "links.concurrency"),
            ("[links]\nper_host = 100\n", "links.per_host"),
            (
                "[links]\nhide_after_failures = 0\n",
                "links.hide_after_failures",
            ),
            ("[links]\ntimeout = \"0s\"\n", "links.timeout"),
            (
                "[links]\nsite_link = \"(unclosed\"\nsite_link_regex = true\n",
                "links.site_link",
            ),
            (
                "[links]\nallowed_networks = [\"10.0.0.0/33\"]\n",
                "not a network",
            ),
            ("[log]\nlevel = \"loud\"\n", "log.level"),
            (
                "[fanout]\nretry_schedule = [\"0s\", \"5s\"]\n",
                "`fanout.retry_schedule`: has moved",
            ),
            (
                "[fanout]\nretry_jitter = 0.1\n",
                "under [kinds.\"fanout.deliver\"]",
            ),
            (
                "[kinds.\"fanout.deliver\"]\nretry_schedule = [\"1s\"]\n",
                "kinds.\"fanout.deliver\".retry_schedule",
            ),
            (
                "[kinds.\"links.check\"]\nretry_jitter = 0.1\n",
                "kinds.\"links.check\".retry_jitter",
            ),
            (
                "[kinds.\"fanout.deliver\"]\nbackoff_base = \"2s\"\nretry_jitter = 0.1\n",
                "kinds.\"fanout.deliver\".retry_jitter",
            ),
            (
                "[[cron.schedules]]\nname = \"a b\"\nschedule = \"* * * * *\"\nkind = \"noop\"\n",
                "name",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let file = dir.join(format!("{i}.toml"));
            std::fs::write(&file, text).unwrap();
            let err = Settings::load(Some(&file), none(), &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains(field), "{text}: {err}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
