//! Friend links through the real binary: `celeriac links …` to manage them, a worker running
//! `links.check` enqueued with `celeriac enqueue`, the summary in `celeriac status --wait`,
//! progress while it runs, and the new states in `celeriac links list --json`; files saved
//! with a BOM, URLs that cannot be parsed, passwords in URLs.

use crate::support::Env;
use celeriac_testkit::{free_port, wait_until, TestHttp, BACKLINK};
use serde_json::Value;
use std::time::Duration;

const LINKS: &str = r#"
[links]
allow_private_networks = true
timeout = "2s"
retry_base = "20ms"
host_interval = "0ms"
"#;

fn code(out: &std::process::Output) -> Option<i32> {
    out.status.code()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manage_check_and_list_links() {
    let s = TestHttp::start().await;
    let mut env = Env::new(LINKS);
    assert!(env.ok(&["migrate"]).contains("applied migration(s) 1"));
    assert!(env.ok(&["migrate"]).contains("up to date"));
    env.ok(&["links", "add", "--name", "good", "--url", &s.url("/ok")]);
    env.ok(&[
        "links",
        "add",
        "--name",
        "gone",
        "--url",
        &s.url("/status/404"),
    ]);
    env.ok(&[
        "links",
        "add",
        "--name",
        "paused",
        "--url",
        &s.url("/status/500"),
        "--inactive",
    ]);
    let csv = env.dir.join("links.csv");
    std::fs::write(
        &csv,
        format!(
            "name,url\nplain,{}\nflaky,{}\n",
            s.url("/plain"),
            s.url("/flaky")
        ),
    )
    .unwrap();
    let out = env.ok(&["links", "import", csv.to_str().unwrap()]);
    assert!(out.contains("2 added"), "{out}");

    env.spawn_worker(&[]);
    let payload = format!(r#"{{"site_link": "{BACKLINK}"}}"#);
    let id = env.enqueue("links.check", &payload, &[]);
    let job = env.wait_final(&id, Duration::from_secs(30));
    assert_eq!(job["state"], "succeeded", "{job}");
    let r = &job["result"];
    assert_eq!(r["active_num"], 4, "{r}");
    assert_eq!(r["to_not_show"], 2, "{r}");
    assert_eq!(r["to_show"], 0, "{r}");
    assert_eq!(s.hits("/status/500"), 0, "inactive links are not checked");

    let list: Value = serde_json::from_str(&env.ok(&["links", "list", "--json"])).unwrap();
    let links = list.as_array().unwrap();
    assert_eq!(links.len(), 5);
    let mut fields: Vec<&str> = links[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "is_active",
            "is_show",
            "last_checked_at",
            "last_status",
            "name",
            "not_show_reason",
            "url"
        ]
    );
    let find = |name: &str| links.iter().find(|l| l["name"] == name).unwrap().clone();
    assert_eq!(find("gone")["is_show"], false);
    assert_eq!(find("gone")["not_show_reason"], "网页请求返回404");
    assert_eq!(find("gone")["last_status"], 404);
    assert_eq!(find("plain")["not_show_reason"], "网站未设置本站外链");
    assert_eq!(find("flaky")["is_show"], true);
    assert!(find("good")["last_checked_at"].is_string());
    assert!(find("paused")["last_checked_at"].is_null());

    // Per-link details of that run.
    let run_id = r["run_id"].as_i64().unwrap().to_string();
    let details: Value =
        serde_json::from_str(&env.ok(&["links", "results", &run_id, "--json"])).unwrap();
    let flaky = details["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "flaky")
        .unwrap();
    assert_eq!(flaky["attempts"], 2, "{flaky}");
    let human = env.ok(&["links", "results", "--problems"]);
    assert!(
        human.contains("gone") && !human.contains("flaky"),
        "{human}"
    );
    assert!(env.ok(&["links", "runs"]).contains("finished"));

    env.ok(&["links", "remove", "gone"]);
    let out = env.cli(&["links", "remove", "gone"]);
    assert_eq!(code(&out), Some(1));
    assert!(stderr(&out).contains("no link named"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_visible_while_a_run_goes_on() {
    let s = TestHttp::start().await;
    let mut env = Env::new(&format!("{LINKS}concurrency = 1\nper_host = 1\n"));
    for i in 0..8 {
        env.ok(&[
            "links",
            "add",
            "--name",
            &format!("slow-{i}"),
            "--url",
            &s.url(&format!("/wait/400?{i}")),
        ]);
    }
    env.spawn_worker(&[]);
    let id = env.enqueue("links.check", "{}", &[]);
    let mut seen = Value::Null;
    wait_until(
        Duration::from_secs(20),
        "progress part-way through the run",
        || {
            let job = env.status(&id);
            let p = &job["progress"];
            let partway = job["state"] == "active"
                && p["total"] == 8
                && p["done"].as_u64().is_some_and(|d| d > 0 && d < 8);
            let finished = job["state"] == "succeeded";
            if partway {
                seen = job;
            }
            partway || finished
        },
    );
    assert!(!seen.is_null(), "no progress seen before the run finished");
    let human = env.ok(&["status", &id]);
    assert!(human.contains("progress"), "{human}");
    let job = env.wait_final(&id, Duration::from_secs(30));
    assert_eq!(job["result"]["checked"], 8);
}

#[test]
fn bad_input_is_refused_with_what_to_do() {
    let env = Env::new(LINKS);
    let out = env.cli(&["links", "add", "--name", "x", "--url", "example.org"]);
    assert_eq!(code(&out), Some(2));
    assert!(stderr(&out).contains("http://"), "{}", stderr(&out));
    env.ok(&["links", "add", "--name", "x", "--url", "https://x.example/"]);
    let out = env.cli(&["links", "add", "--name", "x", "--url", "https://y.example/"]);
    assert_eq!(code(&out), Some(2));
    assert!(stderr(&out).contains("exists already"), "{}", stderr(&out));

    let bad = env.dir.join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"name\":\"a\",\"url\":\"https://a.example/\"}\n{\"name\":\"b\",\"url\":\"gopher://b\"}\n",
    )
    .unwrap();
    let out = env.cli(&["links", "import", bad.to_str().unwrap()]);
    assert_eq!(code(&out), Some(2));
    assert!(
        stderr(&out).contains("line 2") && stderr(&out).contains("nothing imported"),
        "{}",
        stderr(&out)
    );
    let list: Value = serde_json::from_str(&env.ok(&["links", "list", "--json"])).unwrap();
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "nothing from the bad file"
    );
    let unknown = env.dir.join("links.txt");
    std::fs::write(&unknown, "").unwrap();
    let out = env.cli(&["links", "import", unknown.to_str().unwrap()]);
    assert_eq!(code(&out), Some(2));
    assert!(stderr(&out).contains("--format"), "{}", stderr(&out));

    let out = env.cli(&["links", "list", "--database-url", "mysql://x/y"]);
    assert_eq!(code(&out), Some(2));
    assert!(stderr(&out).contains("database_url"), "{}", stderr(&out));
}

#[test]
fn files_saved_with_a_bom_import_cleanly() {
    // Excel and WPS save "CSV UTF-8" with a byte-order mark; Notepad saves JSON lines so.
    let env = Env::new(LINKS);
    let excel = env.dir.join("excel.csv");
    std::fs::write(
        &excel,
        "\u{feff}name,url\r\n小明的博客,https://xiaoming.example/\r\n",
    )
    .unwrap();
    let wps = env.dir.join("wps.csv");
    std::fs::write(&wps, "\u{feff}Alice,https://alice.example/\r\n").unwrap();
    let notepad = env.dir.join("notepad.jsonl");
    std::fs::write(
        &notepad,
        "\u{feff}{\"name\":\"Bob\",\"url\":\"https://bob.example/\"}\r\n",
    )
    .unwrap();
    for file in [&excel, &wps, &notepad] {
        let out = env.ok(&["links", "import", file.to_str().unwrap()]);
        assert!(out.contains("1 added"), "{}: {out}", file.display());
    }
    let list: Value = serde_json::from_str(&env.ok(&["links", "list", "--json"])).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Alice", "Bob", "小明的博客"], "no U+FEFF in a name");
    env.ok(&["links", "remove", "Alice"]);
}

#[test]
fn unparsable_urls_are_refused_naming_the_problem() {
    let env = Env::new(LINKS);
    for (url, problem) in [
        ("http://x.example:99999/", "invalid port number"),
        ("http://exa%mple/", "invalid international domain name"),
        ("http://[::1/", "invalid IPv6 address"),
    ] {
        let out = env.cli(&["links", "add", "--name", "x", "--url", url]);
        assert_eq!(code(&out), Some(2), "{url}: {}", stderr(&out));
        assert!(stderr(&out).contains(problem), "{url}: {}", stderr(&out));
    }
    let csv = env.dir.join("links.csv");
    std::fs::write(
        &csv,
        "name,url\nfine,https://fine.example/\nbad,http://[::1/\n",
    )
    .unwrap();
    let out = env.cli(&["links", "import", csv.to_str().unwrap()]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("line 3")
            && err.contains("invalid IPv6 address")
            && err.contains("nothing imported"),
        "{err}"
    );
    let list: Value = serde_json::from_str(&env.ok(&["links", "list", "--json"])).unwrap();
    assert_eq!(list, serde_json::json!([]), "nothing stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_in_link_urls_are_never_printed() {
    let s = TestHttp::start().await;
    let mut env = Env::new(LINKS);
    let gone = format!("http://friend:s3cret@{}/status/404", s.addr);
    let closed = format!("http://friend:s3cret@127.0.0.1:{}/", free_port());
    let out = env.ok(&["links", "add", "--name", "gone", "--url", &gone]);
    assert!(
        out.contains("friend:***@") && !out.contains("s3cret"),
        "{out}"
    );
    env.ok(&["links", "add", "--name", "closed", "--url", &closed]);
    env.spawn_worker(&[]);
    let id = env.enqueue("links.check", "{}", &[]);
    let job = env.wait_final(&id, Duration::from_secs(30));
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"]["failed"], 2, "{job}");
    // The link still carries its password: the check sent it.
    let sent = s.requests_to("/status/404");
    assert_eq!(
        sent[0].header("authorization"),
        Some("Basic ZnJpZW5kOnMzY3JldA==")
    );
    for args in [
        &["links", "list"][..],
        &["links", "list", "--json"],
        &["links", "results"],
        &["links", "results", "--json"],
        &["links", "results", "--problems"],
    ] {
        let out = env.ok(args);
        assert!(!out.contains("s3cret"), "{args:?}: {out}");
        assert!(out.contains("friend:***@"), "{args:?}: {out}");
    }
}
