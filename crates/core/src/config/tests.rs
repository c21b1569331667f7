use super::*;
use std::io::Write;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// A TOML file in the temp directory, removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(text: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "celeriac-config-test-{}-{}.toml",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A section of a test's own, as a part of Celeriac would declare one.
#[derive(Debug, Default, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Demo {
    count: u32,
    names: Vec<String>,
    label: String,
    #[serde(deserialize_with = "opt_duration")]
    every: Option<Duration>,
}

impl Section for Demo {
    const NAME: &'static str = "demo";
    const LIST_FIELDS: &'static [&'static str] = &["names"];
    const STRING_FIELDS: &'static [&'static str] = &["label"];

    fn validate(&self) -> std::result::Result<(), FieldError> {
        if self.count > 100 {
            return Err(FieldError::new("demo.count", "must be at most 100"));
        }
        Ok(())
    }
}

#[test]
fn defaults_are_valid_and_match_the_constants() {
    let c = Config::load_with_env(None, env(&[])).unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.retention.dead_max, DEFAULT_DEAD_MAX);
    assert_eq!(c.redis_timeout, DEFAULT_REDIS_TIMEOUT);
}

#[test]
fn defaults_then_file_then_env_then_flags() {
    let f = TempFile::new("prefix = \"from-file\"\n[demo]\ncount = 4\nlabel = \"x\"\n[jobs]\nmax_payload_bytes = 4096\n");
    let mut layers = Layers::load_with_env(
        Some(&f.0),
        env(&[
            ("CELERIAC_DEMO__COUNT", "7"),
            ("CELERIAC_DEMO__NAMES", "a, b"),
            ("CELERIAC_DEMO__LABEL", "2024"),
            ("CELERIAC_UNRELATED", "x"),
            ("CELERIAC_CONFIG", "/elsewhere.toml"),
        ]),
    )
    .unwrap();
    layers.set_default("demo.every", "5s".into());
    layers.set_default("demo.count", 1.into());
    layers.set_flag("prefix", "from-flag");
    let demo: Demo = layers.section().unwrap();
    assert_eq!(
        demo.count, 7,
        "the environment over the file over the default"
    );
    assert_eq!(demo.names, ["a", "b"], "a list field");
    assert_eq!(demo.label, "2024", "a text field stays text");
    assert_eq!(demo.every, Some(Duration::from_secs(5)), "a default");
    let core = Config::from_layers(&layers).unwrap();
    assert_eq!(core.prefix, "from-flag", "a flag over everything");
    assert_eq!(core.jobs.max_payload_bytes, 4096);
    layers.refuse_unclaimed().unwrap();
}

#[test]
fn a_list_from_the_file_replaces_the_default_list() {
    let f = TempFile::new("[demo]\nnames = [\"mine\"]\n");
    let mut layers = Layers::load_with_env(Some(&f.0), env(&[])).unwrap();
    layers.set_default(
        "demo.names",
        toml::Value::Array(vec!["built-in".into(), "other".into()]),
    );
    let demo: Demo = layers.section().unwrap();
    assert_eq!(demo.names, ["mine"]);
}

#[test]
fn a_key_nobody_reads_is_refused_with_its_name() {
    let f = TempFile::new("prefix = \"p\"\n[demo]\ncount = 1\n[wroker]\nconcurrency = 3\n");
    let layers = Layers::load_with_env(Some(&f.0), env(&[])).unwrap();
    let _: Demo = layers.section().unwrap();
    Config::from_layers(&layers).unwrap();
    let err = layers.refuse_unclaimed().unwrap_err().to_string();
    assert!(err.contains("`wroker`") && err.contains("demo"), "{err}");
}

#[test]
fn bad_values_name_their_field() {
    let cases = [
        ("redis_url = \"http://x\"\n", "redis_url"),
        ("prefix = \"a b\"\n", "prefix"),
        ("redis_timeout = \"1ms\"\n", "redis_timeout"),
        ("[jobs]\nmax_payload_bytes = 1\n", "jobs.max_payload_bytes"),
        ("[retention]\ndead_max = 0\n", "retention.dead_max"),
        ("[demo]\ncount = 101\n", "demo.count"),
        ("[demo]\ncuont = 1\n", "cuont"),
        ("[demo]\nevery = \"soon\"\n", "not a duration"),
    ];
    for (text, field) in cases {
        let f = TempFile::new(text);
        let layers = Layers::load_with_env(Some(&f.0), env(&[])).unwrap();
        let err = Config::from_layers(&layers)
            .map(drop)
            .and_then(|_| layers.section::<Demo>().map(drop))
            .unwrap_err()
            .to_string();
        assert!(err.contains(field), "{text}: {err}");
    }
}

#[test]
fn passwords_are_redacted_even_in_malformed_urls() {
    assert_eq!(
        redact_url("redis://u:secret@h:6379/0"),
        "redis://u:***@h:6379/0"
    );
    assert_eq!(redact_url("rediss://secret@h"), "rediss://***@h");
    assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
    assert_eq!(
        redact_url("http://h:1/x?access_token=t&group=5#f"),
        "http://h:1/x?access_token=***&group=5#f"
    );
    for bad in [
        "redis//:S3cret@127.0.0.1:6379",
        "redis:/:S3cret@127.0.0.1:6379",
        ":S3cret@127.0.0.1:6379",
        "redis://:S3cret@127.0.0.1:6379@x",
        "postgres://u:S3cret@db/x?sslmode=require",
    ] {
        let r = redact_url(bad);
        assert!(!r.contains("S3cret"), "{bad} → {r}");
    }
}

#[test]
fn a_malformed_redis_url_is_refused_without_its_password() {
    let err = Config::load_with_env(
        None,
        env(&[("CELERIAC_REDIS_URL", "redis//:S3cret@127.0.0.1:6379")]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("redis_url") && !err.contains("S3cret"),
        "{err}"
    );
}
