//! Friend links: the operator's list, and the state a check run keeps on each link.

use super::{now_ms, rfc3339, Backend, Store};
use crate::error::{Error, Result};
use celeriac_core::config::redact_url;
use celeriac_db::sqlx;
use celeriac_http::reqwest::Url;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

/// Longest link name.
pub const MAX_NAME_LEN: usize = 200;
/// Longest link URL.
pub const MAX_URL_LEN: usize = 2048;

/// One friend link, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Link {
    /// Row id.
    #[serde(skip)]
    pub id: i64,
    /// Unique name (the whitelist refers to it).
    pub name: String,
    /// Page checked.
    pub url: String,
    /// Checked by `links.check` (an inactive link is kept but ignored).
    pub is_active: bool,
    /// Shown on the site.
    pub is_show: bool,
    /// Why it is hidden (empty when shown).
    pub not_show_reason: String,
    /// HTTP status of the last check (none after a transport failure).
    pub last_status: Option<u16>,
    /// What went wrong at the last check (`ok` when nothing did).
    #[serde(skip)]
    pub last_error_kind: Option<String>,
    /// When the last check finished, milliseconds since the epoch.
    #[serde(skip)]
    pub last_checked_ms: Option<i64>,
    /// Failed checks in a row.
    #[serde(skip)]
    pub consecutive_failures: i64,
}

/// A link to add or import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewLink {
    /// Unique name.
    pub name: String,
    /// Absolute http(s) URL.
    pub url: String,
    /// Checked by `links.check`.
    pub is_active: bool,
}

impl NewLink {
    /// Check the name and URL; the error names the field, the problem and what is expected
    /// (the URL's password redacted).
    pub fn validate(&self) -> Result<()> {
        let name = self.name.trim();
        if name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
            return Err(Error::Invalid(format!(
                "name {:?}: expected 1-{MAX_NAME_LEN} characters without control characters",
                self.name
            )));
        }
        if let Some(problem) = url_problem(&self.url) {
            return Err(Error::Invalid(format!(
                "url {:?} (link {:?}): {problem}; expected an absolute http:// or https:// URL of at most {MAX_URL_LEN} bytes",
                redact_url(&self.url),
                self.name
            )));
        }
        Ok(())
    }
}

/// What is wrong with `url` as a link's address, if anything: the parser's own words for a
/// URL it cannot read (a port out of range, a character no host may hold, an unclosed IPv6
/// bracket), so that what is stored is what a check can fetch.
fn url_problem(url: &str) -> Option<String> {
    if url.len() > MAX_URL_LEN {
        return Some(format!("longer than {MAX_URL_LEN} bytes"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("it contains spaces or control characters".into());
    }
    let lower = url.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
    else {
        return Some("not an http:// or https:// URL".into());
    };
    // The parser reads `https:///path` as the host `path`: refuse a missing host here.
    if rest.is_empty() || rest.starts_with('/') {
        return Some("no host".into());
    }
    match Url::parse(url) {
        Err(e) => Some(format!("it cannot be parsed: {e}")),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => Some("no host".into()),
        Ok(_) => None,
    }
}

/// What an import did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// New links.
    pub added: u64,
    /// Existing links whose URL or activity changed.
    pub updated: u64,
    /// Existing links already as imported.
    pub unchanged: u64,
}

/// The state a check writes on a link when it changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkState {
    /// Row id.
    pub id: i64,
    /// Shown on the site.
    pub is_show: bool,
    /// Why it is hidden (empty when shown).
    pub not_show_reason: String,
    /// HTTP status (none after a transport failure).
    pub last_status: Option<u16>,
    /// `ok`, or what went wrong.
    pub last_error_kind: String,
    /// Failed checks in a row.
    pub consecutive_failures: i64,
}

impl Link {
    /// This link's state in the form a check compares and writes.
    pub fn state(&self) -> LinkState {
        LinkState {
            id: self.id,
            is_show: self.is_show,
            not_show_reason: self.not_show_reason.clone(),
            last_status: self.last_status,
            last_error_kind: self.last_error_kind.clone().unwrap_or_default(),
            consecutive_failures: self.consecutive_failures,
        }
    }

    /// `last_checked_at` as RFC 3339 (UTC), if checked.
    pub fn last_checked_at(&self) -> Option<String> {
        self.last_checked_ms.map(rfc3339)
    }
}

/// The columns of a [`Link`]. `last_checked_at` is the end of the newest finished run that
/// has a result for the link, so a check that changes nothing writes nothing on the link's row;
/// once that run's results are pruned it falls back to the time stored with the last change.
const LINK_COLUMNS: &str = "id, name, url, is_active, is_show, not_show_reason, last_status, \
     last_error_kind, consecutive_failures, COALESCE((SELECT MAX(r.finished_at) \
     FROM link_check_results x JOIN link_check_runs r ON r.id = x.run_id \
     WHERE x.link_id = links.id), links.last_checked_at) AS last_checked_at";

fn link_from_row(row: &AnyRow) -> Result<Link> {
    Ok(Link {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        url: row.try_get("url")?,
        is_active: row.try_get::<i64, _>("is_active")? != 0,
        is_show: row.try_get::<i64, _>("is_show")? != 0,
        not_show_reason: row.try_get("not_show_reason")?,
        last_status: row
            .try_get::<Option<i64>, _>("last_status")?
            .and_then(|s| u16::try_from(s).ok()),
        last_error_kind: row.try_get("last_error_kind")?,
        last_checked_ms: row.try_get("last_checked_at")?,
        consecutive_failures: row.try_get("consecutive_failures")?,
    })
}

fn flag(b: bool) -> i64 {
    i64::from(b)
}

fn unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

impl Store {
    /// Add a link; fails with [`Error::DuplicateName`] if the name is taken.
    pub async fn add_link(&self, link: &NewLink) -> Result<Link> {
        link.validate()?;
        let now = now_ms();
        let name = link.name.trim();
        let inserted = sqlx::query(
            "INSERT INTO links (name, url, is_active, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(name.to_string())
        .bind(link.url.clone())
        .bind(flag(link.is_active))
        .bind(now)
        .bind(now)
        .execute(self.pool())
        .await;
        match inserted {
            Err(e) if unique_violation(&e) => Err(Error::DuplicateName(name.to_string())),
            Err(e) => Err(e.into()),
            Ok(_) => self
                .link(name)
                .await?
                .ok_or_else(|| Error::Invalid(format!("link {name:?} vanished after insert"))),
        }
    }

    /// The link named `name`.
    pub async fn link(&self, name: &str) -> Result<Option<Link>> {
        let sql = format!("SELECT {LINK_COLUMNS} FROM links WHERE name = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(name.to_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(link_from_row).transpose()
    }

    /// Every link, by name (byte order, the same on every backend).
    pub async fn list_links(&self) -> Result<Vec<Link>> {
        let sql = format!("SELECT {LINK_COLUMNS} FROM links");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        let mut links = rows.iter().map(link_from_row).collect::<Result<Vec<_>>>()?;
        links.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(links)
    }

    /// Active links, by id (what a check run reads).
    pub async fn active_links(&self) -> Result<Vec<Link>> {
        let sql = format!("SELECT {LINK_COLUMNS} FROM links WHERE is_active = 1 ORDER BY id");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(link_from_row).collect()
    }

    /// Remove the link named `name`; false if there was none.
    pub async fn remove_link(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM links WHERE name = $1")
            .bind(name.to_string())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Add new links and update the URL and activity of existing ones (matched by name), in
    /// one transaction: a failure leaves the table as it was.
    pub async fn import_links(&self, links: &[NewLink]) -> Result<ImportSummary> {
        for l in links {
            l.validate()?;
        }
        let now = now_ms();
        // Reads, then writes: on SQLite the transaction takes the write lock up front, or a
        // worker committing in between would fail it at once (WAL's busy snapshot) instead of
        // making it wait.
        let mut tx = match self.backend() {
            Backend::Sqlite => self.pool().begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool().begin().await?,
        };
        let mut summary = ImportSummary::default();
        for l in links {
            let name = l.name.trim().to_string();
            let existing: Option<(String, i64)> =
                sqlx::query_as("SELECT url, is_active FROM links WHERE name = $1")
                    .bind(name.clone())
                    .fetch_optional(&mut *tx)
                    .await?;
            match existing {
                None => {
                    sqlx::query(
                        "INSERT INTO links (name, url, is_active, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(name)
                    .bind(l.url.clone())
                    .bind(flag(l.is_active))
                    .bind(now)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    summary.added += 1;
                }
                Some((url, active)) if url == l.url && (active != 0) == l.is_active => {
                    summary.unchanged += 1;
                }
                Some(_) => {
                    sqlx::query(
                        "UPDATE links SET url = $1, is_active = $2, updated_at = $3 WHERE name = $4",
                    )
                    .bind(l.url.clone())
                    .bind(flag(l.is_active))
                    .bind(now)
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                    summary.updated += 1;
                }
            }
        }
        tx.commit().await?;
        Ok(summary)
    }

    /// Write the states that changed (and the time, as `last_checked_at`), in one transaction.
    pub async fn write_link_states(&self, states: &[LinkState]) -> Result<()> {
        if states.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        for s in states {
            sqlx::query(
                "UPDATE links SET is_show = $1, not_show_reason = $2, last_status = $3, \
                 last_error_kind = $4, consecutive_failures = $5, updated_at = $6, \
                 last_checked_at = $6 WHERE id = $7",
            )
            .bind(flag(s.is_show))
            .bind(s.not_show_reason.clone())
            .bind(s.last_status.map(i64::from))
            .bind(s.last_error_kind.clone())
            .bind(s.consecutive_failures)
            .bind(now)
            .bind(s.id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_links_are_validated() {
        let ok = NewLink {
            name: "Blog".into(),
            url: "https://example.org/".into(),
            is_active: true,
        };
        assert!(ok.validate().is_ok());
        for (name, url) in [
            ("", "https://example.org/"),
            ("a\u{7}", "https://example.org/"),
            ("x", "ftp://example.org/"),
            ("x", "https://"),
            ("x", "https:///path"),
            ("x", "https://exa mple.org/"),
            ("x", "example.org"),
        ] {
            let l = NewLink {
                name: name.into(),
                url: url.into(),
                is_active: true,
            };
            assert!(l.validate().is_err(), "{name:?} {url:?} should be refused");
        }
    }

    #[test]
    fn unparsable_urls_are_refused_naming_the_problem() {
        for (url, problem) in [
            ("http://x.example:99999/", "invalid port number"),
            ("http://exa%mple/", "invalid international domain name"),
            ("http://[::1/", "invalid IPv6 address"),
            (
                "https://user:s3cret@exa%mple/",
                "invalid international domain name",
            ),
        ] {
            let l = NewLink {
                name: "x".into(),
                url: url.into(),
                is_active: true,
            };
            let e = l.validate().unwrap_err().to_string();
            assert!(e.contains(problem), "{url}: {e}");
            assert!(!e.contains("s3cret"), "the password is redacted: {e}");
        }
        for url in [
            "http://x.example:8080/",
            "http://[::1]:80/",
            "https://user:pass@x.example/",
            "https://例子.测试/友情链接",
        ] {
            let l = NewLink {
                name: "x".into(),
                url: url.into(),
                is_active: true,
            };
            assert!(l.validate().is_ok(), "{url}: {:?}", l.validate());
        }
    }
}
