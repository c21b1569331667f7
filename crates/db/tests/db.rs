//! The SQL layer against real databases: migrations of several domains applied once, in
//! version order, on SQLite and PostgreSQL; a program that knows fewer domains opens a
//! database migrated by one that knows more; a lazy database is touched only on first use and
//! a failed opening is not kept; unsupported URLs are refused without their password.

use celeriac_db::{Backend, Db, LazyDb, Migrations};
use celeriac_testkit::TestDb;

const NOTES: Migrations = &[(
    9001,
    "9001_notes",
    "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
    "CREATE TABLE notes (id BIGINT PRIMARY KEY, body TEXT NOT NULL)",
)];
const TAGS: Migrations = &[(
    9002,
    "9002_tags",
    "CREATE TABLE tags (note_id INTEGER NOT NULL REFERENCES notes (id), tag TEXT NOT NULL)",
    "CREATE TABLE tags (note_id BIGINT NOT NULL REFERENCES notes (id), tag TEXT NOT NULL)",
)];

async fn migrations_apply_once_in_order(kind: &str) {
    let t = TestDb::of(kind);
    // Given out of order: the second depends on the first.
    let db = Db::connect(&t.url).await.unwrap();
    assert_eq!(
        db.backend(),
        if kind == "postgres" {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    );
    assert_eq!(db.migrate(&[TAGS, NOTES]).await.unwrap(), vec![9001, 9002]);
    assert!(
        db.migrate(&[NOTES, TAGS]).await.unwrap().is_empty(),
        "applied once"
    );
    // `$n` placeholders in both dialects.
    sqlx::query("INSERT INTO notes (id, body) VALUES ($1, $2)")
        .bind(1_i64)
        .bind("hello")
        .execute(db.pool())
        .await
        .unwrap();
    let body: String = sqlx::query_scalar("SELECT body FROM notes WHERE id = $1")
        .bind(1_i64)
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(body, "hello");
    db.close().await;
    // A program that knows only the first domain opens it as it is.
    let older = Db::open(&t.url, &[NOTES]).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notes")
        .fetch_one(older.pool())
        .await
        .unwrap();
    assert_eq!(n, 1);
    older.close().await;
}

#[tokio::test]
async fn sqlite_migrations_apply_once_in_order() {
    migrations_apply_once_in_order("sqlite").await;
}

#[tokio::test]
async fn postgres_migrations_apply_once_in_order() {
    migrations_apply_once_in_order("postgres").await;
}

#[tokio::test]
async fn a_lazy_database_is_created_on_first_use_only() {
    let t = TestDb::sqlite();
    let file = t.url.trim_start_matches("sqlite://").to_string();
    let lazy = LazyDb::new(t.url.clone(), vec![NOTES]);
    assert!(!lazy.is_open());
    assert!(!std::path::Path::new(&file).exists(), "nothing created yet");
    let db = lazy.get().await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notes")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(n, 0, "migrated before the first use");
    assert!(lazy.is_open() && std::path::Path::new(&file).exists());
}

#[tokio::test]
async fn a_failed_opening_is_tried_again_on_the_next_use() {
    // Nothing listens on port 1.
    let lazy = LazyDb::new("postgres://celeriac:S3cret@127.0.0.1:1/none", vec![NOTES]);
    let err = lazy.get().await.unwrap_err().to_string();
    assert!(err.contains("cannot open the database"), "{err}");
    assert!(!err.contains("S3cret"), "{err}");
    assert!(!lazy.is_open(), "the failure is not kept");
    assert!(lazy.get().await.is_err(), "tried again, failing again");
}

#[tokio::test]
async fn unsupported_urls_say_what_to_use_without_their_password() {
    let err = Db::connect("mysql://root:S3cret@db/x")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("use sqlite://PATH"), "{err}");
    assert!(!err.contains("S3cret"), "{err}");
}
