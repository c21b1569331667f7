//! The Lua scripts behind every multi-key state change. Each file in `scripts/` opens with a
//! header giving its KEYS, ARGV and reply; the parts of `lib.lua` (shared helpers) it uses are
//! prepended to each.
//!
//! Redis runs a script's whole text on every call, so a helper a script never calls still costs
//! that call a closure (and a table constructor costs a table): `assemble` keeps only the
//! paragraphs of `lib.lua` that define a name the script, or a kept paragraph, mentions.
//!
//! Each script opens with a Redis 7 shebang whose flags say whether it may run when Redis is
//! over `maxmemory`: scripts that create jobs may not (the producer gets a clear error), scripts
//! that move, finish or delete jobs may (a full Redis can always be drained).
//!
//! Scripts are sent with EVALSHA and loaded on a NOSCRIPT reply, so a `SCRIPT FLUSH` or a
//! restarted Redis costs one extra round trip, never an error.

use redis::Script;
use std::sync::LazyLock;

/// Header of scripts that create jobs: refused when Redis is over `maxmemory` (with
/// `noeviction`), so a producer gets a clear error and nothing is half-written.
const CREATES: &str = "#!lua\n";
/// Header of scripts that move or finish existing jobs: allowed when Redis is full, so workers
/// and operators can always drain and repair a full Redis (they change records in place, and
/// completions feed retention, which frees memory).
const DRAINS: &str = "#!lua flags=allow-oom\n";

/// `scripts/lib.lua`: the constants and helpers scripts share (for tests that check them against
/// the Rust side, such as the states a record can hold).
pub const LIB: &str = include_str!("../scripts/lib.lua");

/// A script's text as sent to Redis: `header`, the paragraphs of `lib.lua` that `body` needs (in
/// their order in `lib.lua`), then `body`.
///
/// A paragraph is a run of lines between blank lines; it defines the names its lines declare at
/// top level (`local function NAME`, `local NAME, NAME =`). It is needed when the body or a needed
/// paragraph mentions one of them as a word (a mention in a comment keeps it too: that costs a
/// little time, never an error). A paragraph that declares nothing (prose only) is left out.
pub fn assemble(header: &str, body: &str) -> String {
    let paragraphs: Vec<(&str, Vec<&str>)> = LIB
        .split("\n\n")
        .map(|p| (p.trim_matches('\n'), declared(p)))
        .filter(|(text, names)| {
            // A paragraph declaring nothing is dropped: it must hold nothing but comments.
            assert!(
                !names.is_empty()
                    || text
                        .lines()
                        .all(|l| l.trim().is_empty() || l.starts_with("--")),
                "lib.lua: this paragraph declares no name but holds code (a blank line inside a \
                 helper?); keep each helper's lines together:\n{text}"
            );
            !names.is_empty()
        })
        .collect();
    let mut wanted: std::collections::HashSet<&str> = words(body).collect();
    let mut keep = vec![false; paragraphs.len()];
    loop {
        let mut grew = false;
        for (i, (text, names)) in paragraphs.iter().enumerate() {
            if !keep[i] && names.iter().any(|n| wanted.contains(n)) {
                keep[i] = true;
                grew = true;
                wanted.extend(words(text));
            }
        }
        if !grew {
            break;
        }
    }
    let mut out = String::from(header);
    for (i, (text, _)) in paragraphs.iter().enumerate() {
        if keep[i] {
            out.push_str(text);
            out.push_str("\n\n");
        }
    }
    out.push_str(body);
    out
}

/// The names a paragraph of `lib.lua` declares at top level.
fn declared(paragraph: &str) -> Vec<&str> {
    let mut names = Vec::new();
    for line in paragraph.lines() {
        if let Some(rest) = line.strip_prefix("local function ") {
            names.extend(words(rest).take(1));
        } else if let Some(rest) = line.strip_prefix("local ") {
            let lhs = rest.split('=').next().unwrap_or("");
            names.extend(lhs.split(',').map(str::trim).filter(|n| !n.is_empty()));
        }
    }
    names
}

/// The identifiers (Lua words) in `text`.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'))
}

macro_rules! scripts {
    ($($name:ident = $file:literal, $header:ident;)*) => {
        $(
            #[doc = concat!("`scripts/", $file, "`.")]
            pub static $name: LazyLock<Script> = LazyLock::new(|| {
                Script::new(&assemble($header, include_str!(concat!("../scripts/", $file))))
            });
        )*
        /// Every script: its file, the header it is sent with, and its body.
        #[cfg(test)]
        const FILES: &[(&str, &str, &str)] = &[
            $(($file, $header, include_str!(concat!("../scripts/", $file)))),*
        ];
    };
}

scripts! {
    ENQUEUE = "enqueue.lua", CREATES;
    CRON_ENQUEUE = "cron_enqueue.lua", CREATES;
    BATCH_ADD = "batch_add.lua", CREATES;
    BATCH_SEAL = "batch_seal.lua", CREATES;
    BATCH_PARENT = "batch_parent.lua", CREATES;
    FETCH = "fetch.lua", DRAINS;
    ACK = "ack.lua", DRAINS;
    EXTEND = "extend.lua", DRAINS;
    RECOVER = "recover.lua", DRAINS;
    DISOWN = "disown.lua", DRAINS;
    PROMOTE = "promote.lua", DRAINS;
    JANITOR = "janitor.lua", DRAINS;
    CANCEL = "cancel.lua", DRAINS;
    RETRY = "retry.lua", DRAINS;
    PURGE = "purge.lua", DRAINS;
    STRAYS = "strays.lua", DRAINS;
    LOCK = "lock.lua", DRAINS;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body of `file`.
    fn body(file: &str) -> &'static str {
        FILES.iter().find(|(f, _, _)| *f == file).unwrap().2
    }

    /// Whether `text` declares `name` at top level.
    fn declares(text: &str, name: &str) -> bool {
        text.split("\n\n").any(|p| declared(p).contains(&name))
    }

    #[test]
    fn every_lib_name_a_script_mentions_is_declared_in_it() {
        let lib_names: Vec<&str> = LIB.split("\n\n").flat_map(declared).collect();
        assert!(
            lib_names.len() > 20,
            "lib.lua parsed into too few names: {lib_names:?}"
        );
        for (file, header, body) in FILES {
            let text = assemble(header, body);
            for name in &lib_names {
                if words(&text).any(|w| w == *name) {
                    assert!(
                        declares(&text, name),
                        "{file}.lua mentions {name} but was sent without it"
                    );
                }
            }
        }
    }

    #[test]
    fn scripts_carry_only_the_helpers_they_use() {
        let fetch = assemble(DRAINS, body("fetch.lua"));
        let ack = assemble(DRAINS, body("ack.lua"));
        // fetch leases and buries orphans; it settles no batch and trims no index
        assert!(declares(&fetch, "is_utf8") && declares(&fetch, "bury_orphan"));
        assert!(!declares(&fetch, "batch_settle") && !declares(&fetch, "trim_index"));
        // ack records outcomes and settles batches; it buries no orphan
        assert!(declares(&ack, "batch_settle") && declares(&ack, "batch_try_complete"));
        assert!(!declares(&ack, "is_utf8") && !declares(&ack, "KNOWN_STATE"));
        // helpers keep their order: a helper is declared before the helper that calls it
        let at = |name: &str| ack.find(&format!("local function {name}(")).unwrap();
        assert!(at("hist_append") < at("absolve_where") && at("absolve_where") < at("absolve"));
        assert!(ack.starts_with(DRAINS) && ack.ends_with(body("ack.lua")));
    }

    #[test]
    fn every_script_assembles() {
        // `assemble` refuses a lib.lua paragraph with code but no declaration: run it on all
        for (_, header, body) in FILES {
            assert!(assemble(header, body).ends_with(body));
        }
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f != "lib.lua")
            .collect();
        files.sort();
        let mut listed: Vec<&str> = FILES.iter().map(|(f, _, _)| *f).collect();
        listed.sort();
        assert_eq!(files, listed, "a script in scripts/ is not in `scripts!`");
    }
}
