//! What the CLI prints for people: tables fitted to the terminal, escaped control characters,
//! quiet exits on closed pipes, and help with examples and exit codes.

use crate::support::Env;
use redis::Commands;
use std::process::{Command, Stdio};

const LONG_ERROR: &str = "connection reset by peer while sending the request body to the \
upstream mail relay at smtp.internal.example:587 after 3 retries";

/// A pending job written raw, with `kind` and `error` as given.
fn foreign_job(env: &Env, queue: &str, id: &str, kind: &str, error: &str) {
    let envelope = serde_json::json!({
        "v": 1, "id": id, "kind": kind, "queue": queue, "created_at": 1767261000000u64,
        "payload": {"to": "someone@example.com", "body": "x".repeat(300)},
    })
    .to_string();
    let mut con = env.redis();
    let _: () = con
        .hset_multiple(
            env.key(queue, &format!("job:{id}")),
            &[
                ("msg", envelope.as_str()),
                ("state", "pending"),
                ("error", error),
            ],
        )
        .unwrap();
    let _: () = con.lpush(env.key(queue, "pending"), id).unwrap();
    let _: () = con.sadd(format!("{}:queues", env.prefix), queue).unwrap();
}

/// Run the CLI on a pseudo-terminal `cols` columns wide (util-linux `script`); its output with
/// `\r\n` turned into `\n`.
fn on_terminal(env: &Env, cols: u16, args: &[&str]) -> String {
    let mut line = format!(
        "stty cols {cols} rows 50; exec '{}' --config '{}'",
        env!("CARGO_BIN_EXE_celeriac"),
        env.config_path().display()
    );
    for a in args {
        line.push_str(&format!(" '{a}'"));
    }
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env_remove("CELERIAC_REDIS_URL")
        .env_remove("CELERIAC_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run `script` (util-linux) to give the CLI a terminal");
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    assert!(
        out.status.success(),
        "celeriac {args:?} on a terminal: {text}"
    );
    text
}

// issue 10.6: at 80 columns ids, numbers and names stay whole; free text is shortened with an
// ellipsis; nothing is wrapped when the output is not a terminal.
#[test]
fn tables_fit_80_columns_without_breaking_ids_numbers_or_names() {
    let env = Env::new("");
    let id = "0193b0a4-5c2e-7d41-8f0a-2b6f9e1c3d47";
    foreign_job(
        &env,
        "mail-outbound",
        id,
        "mail.welcome-reminder",
        LONG_ERROR,
    );
    // 24,999 more ids ahead of it in the pending list (counted without records).
    let filler: Vec<String> = (0..24_999).map(|i| format!("filler-{i}")).collect();
    let _: () = env
        .redis()
        .lpush(env.key("mail-outbound", "pending"), &filler)
        .unwrap();

    // At 80 columns the whole cells of `jobs list` (id, kind, state, attempts, created) are
    // already wider: they stay whole on one line, and the error is cut to its minimum.
    let list_args = [
        "jobs",
        "list",
        "--queue",
        "mail-outbound",
        "--state",
        "pending",
        "--limit",
        "1",
    ];
    let list = on_terminal(&env, 80, &list_args);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(
        lines.len(),
        5,
        "borders, header, separator, one row: {list}"
    );
    assert!(
        lines[3].contains(id)
            && lines[3].contains("mail.welcome-reminder")
            && lines[3].contains(" 0/25 "),
        "{list}"
    );
    assert!(lines[3].contains("…"), "the error shortened: {list}");
    // Where they fit, the table fits.
    let wide = on_terminal(&env, 132, &list_args);
    assert_eq!(wide.lines().count(), 5, "{wide}");
    assert!(wide.lines().all(|l| l.chars().count() <= 132), "{wide}");
    assert!(
        wide.contains("connection reset") && wide.contains("…"),
        "{wide}"
    );

    let status = on_terminal(&env, 80, &["status", id]);
    assert!(status.lines().all(|l| l.chars().count() <= 80), "{status}");
    for whole in [
        id,
        "mail-outbound",
        "mail.welcome-reminder",
        "2026-01-01T09:50:00.000Z",
    ] {
        assert!(
            status.lines().any(|l| l.contains(whole)),
            "{whole}: {status}"
        );
    }
    assert!(
        status.contains("…"),
        "payload and error shortened: {status}"
    );

    let queues = on_terminal(&env, 80, &["queues"]);
    assert!(
        queues
            .lines()
            .any(|l| l.contains("mail-outbound") && l.contains(" 25000 ")),
        "queue name and count whole, on the queue's line: {queues}"
    );

    // Not a terminal: the whole error, no wrapping.
    let piped = env.ok(&[
        "jobs",
        "list",
        "--queue",
        "mail-outbound",
        "--state",
        "pending",
        "--limit",
        "1",
    ]);
    assert_eq!(piped.lines().count(), 5, "{piped}");
    assert!(piped.contains(LONG_ERROR), "{piped}");
}

// issue 10.8: control characters stored in a job are escaped in every human table; --json
// stays exact.
#[test]
fn control_characters_are_escaped_in_human_output() {
    let env = Env::new("");
    let kind = "evil\x1b[2J\x1b[H";
    let error = "boom\r\nERROR forged line\x1b]0;owned\x07\u{9b}31m";
    foreign_job(&env, "default", "ctl-1", kind, error);
    let _: () = env
        .redis()
        .sadd(format!("{}:queues", env.prefix), "q\x1b[31m")
        .unwrap();
    for args in [
        &["status", "ctl-1"][..],
        &["jobs", "list", "--queue", "default", "--state", "pending"],
        &["queues"],
    ] {
        let out = env.ok(args);
        let raw: Vec<char> = out
            .chars()
            .filter(|c| c.is_control() && *c != '\n')
            .collect();
        assert!(raw.is_empty(), "{args:?} printed {raw:?}:\n{out}");
        assert!(!out.contains("\nERROR forged line"), "{args:?}: {out}");
    }
    let human = env.ok(&["status", "ctl-1"]);
    assert!(human.contains("evil\\u{1b}[2J\\u{1b}[H"), "{human}");
    assert!(
        human.contains("boom\\r\\nERROR forged line\\u{1b}]0;owned\\u{7}\\u{9b}31m"),
        "{human}"
    );
    let json = env.status("ctl-1");
    assert_eq!(json["kind"], kind);
    assert_eq!(json["last_error"], error);
}

// issue 10.7: a reader that closes the pipe early (`| head -1`) ends the command quietly.
#[test]
fn closed_stdout_ends_quietly() {
    let env = Env::new("");
    let id = env.enqueue("noop", "{}", &["--delay", "1h"]);
    env.ok(&[
        "links",
        "add",
        "--name",
        "Alice",
        "--url",
        "https://alice.example/",
    ]);
    for args in [
        &["jobs", "list", "--queue", "default", "--state", "scheduled"][..],
        &[
            "jobs",
            "list",
            "--queue",
            "default",
            "--state",
            "scheduled",
            "--json",
        ],
        &["status", &id],
        &["queues"],
        &["workers", "--json"],
        &["links", "list"],
        &["links", "runs"],
        &["cron", "list"],
        &["verification", "list"],
        &["--help"],
    ] {
        // The read end is closed before the CLI starts, so its first write fails with EPIPE.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_celeriac"))
            .arg("--config")
            .arg(env.config_path())
            .args(args)
            .env_remove("CELERIAC_REDIS_URL")
            .env_remove("CELERIAC_CONFIG")
            .stdout(writer)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}

// issue 10.9: examples in every command's help, exit codes and every command at the top, and
// the global options under their own heading.
#[test]
fn help_shows_examples_exit_codes_and_global_options_apart() {
    let env = Env::new("");
    let top = env.ok(&["--help"]);
    assert!(top.contains("Exit codes:"), "{top}");
    let (head, _) = top.split_once("Commands:").unwrap();
    let commands = subcommands(&top);
    // Every command there is, not a list kept by hand: a new command must join the summary
    // and bring its examples.
    assert!(commands.len() >= 12, "{commands:?}");
    let mut checked = Vec::new();
    for c in &commands {
        assert!(
            head.contains(c.as_str()),
            "{c} missing from the summary: {head}"
        );
        let help = env.ok(&[c, "--help"]);
        checked.push(vec![c.clone()]);
        check_command_help(&[c], &help);
        for sub in subcommands(&help) {
            let help = env.ok(&[c, &sub, "--help"]);
            check_command_help(&[c, &sub], &help);
            checked.push(vec![c.clone(), sub]);
        }
    }
    // The walk reached the nested commands too.
    for nested in [["jobs", "list"], ["links", "add"], ["cron", "history"]] {
        assert!(
            checked.iter().any(|c| c == &nested),
            "{nested:?} not walked: {checked:?}"
        );
    }
}

/// The names listed under `Commands:` in a help text, without `help`.
fn subcommands(help: &str) -> Vec<String> {
    let Some((_, list)) = help.split_once("\nCommands:\n") else {
        return Vec::new();
    };
    list.lines()
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

fn check_command_help(cmd: &[&str], help: &str) {
    assert!(help.contains("Examples:\n  celeriac "), "{cmd:?}: {help}");
    let (own, global) = help
        .split_once("Global options:")
        .unwrap_or_else(|| panic!("{cmd:?}: no global options heading: {help}"));
    assert!(!own.contains("--redis-url"), "{cmd:?}: {help}");
    assert!(
        global.contains("--redis-url") && global.contains("--prefix"),
        "{cmd:?}: {help}"
    );
}
