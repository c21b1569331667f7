use celeriac_testkit::db::{postgres_admin_url, psql};
use celeriac_testkit::TestDb;
use std::process::Command;

fn exists(name: &str) -> bool {
    psql(&format!(
        "SELECT count(*) FROM pg_database WHERE datname = '{name}'"
    )) == "1"
}

#[test]
fn postgres_database_is_created_usable_and_dropped() {
    let db = TestDb::postgres();
    let name = db
        .postgres_name()
        .expect("a PostgreSQL database")
        .to_string();
    assert!(name.starts_with("celeriac_test_"), "{name}");
    assert!(exists(&name));
    let admin = postgres_admin_url();
    let server = admin.rsplit_once('/').unwrap().0;
    assert_eq!(db.url, format!("{server}/{name}"));

    // Its own database: a table made in it is not in the maintenance database.
    let out = Command::new("psql")
        .arg(&db.url)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-A", "-t", "-c"])
        .arg(
            "CREATE TABLE t (x int); INSERT INTO t VALUES (7); SELECT current_database(), x FROM t",
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{name}|7")
    );

    let other = TestDb::of("postgres");
    assert_ne!(other.url, db.url);
    drop(db);
    assert!(!exists(&name), "{name} outlived its TestDb");
}

#[test]
fn sqlite_file_lives_in_a_directory_removed_on_drop() {
    let db = TestDb::of("sqlite");
    assert_eq!(db.postgres_name(), None);
    let file = db.url.strip_prefix("sqlite://").expect("a sqlite URL");
    let dir = std::path::Path::new(file).parent().unwrap().to_path_buf();
    assert!(dir.is_dir());
    std::fs::write(file, b"x").unwrap();
    assert_ne!(TestDb::sqlite().url, db.url);
    drop(db);
    assert!(!dir.exists(), "{} left behind", dir.display());
}
