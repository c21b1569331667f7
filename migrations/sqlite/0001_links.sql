-- Friend links and the runs of the `links.check` job (SQLite).
-- Times are milliseconds since the Unix epoch; flags are 0/1.

CREATE TABLE links (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    name                 TEXT    NOT NULL UNIQUE,
    url                  TEXT    NOT NULL,
    is_active            INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    is_show              INTEGER NOT NULL DEFAULT 1 CHECK (is_show IN (0, 1)),
    not_show_reason      TEXT    NOT NULL DEFAULT '',
    last_status          INTEGER,
    last_error_kind      TEXT,
    last_checked_at      INTEGER,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);

CREATE TABLE link_check_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id      TEXT,
    state       TEXT    NOT NULL,
    site_link   TEXT,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    active_num  INTEGER NOT NULL DEFAULT 0,
    checked     INTEGER NOT NULL DEFAULT 0,
    ok          INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    to_not_show INTEGER NOT NULL DEFAULT 0,
    to_show     INTEGER NOT NULL DEFAULT 0,
    whitelisted INTEGER NOT NULL DEFAULT 0,
    fetches     INTEGER NOT NULL DEFAULT 0,
    error       TEXT
);

CREATE TABLE link_check_results (
    run_id     INTEGER NOT NULL REFERENCES link_check_runs (id) ON DELETE CASCADE,
    link_id    INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    url        TEXT    NOT NULL,
    outcome    TEXT    NOT NULL,
    status     INTEGER,
    final_url  TEXT,
    redirects  INTEGER NOT NULL DEFAULT 0,
    attempts   INTEGER NOT NULL DEFAULT 0,
    elapsed_ms INTEGER NOT NULL DEFAULT 0,
    error      TEXT,
    change     TEXT,
    PRIMARY KEY (run_id, link_id)
);

-- For a link's last check time (newest run with a result for it).
CREATE INDEX link_check_results_by_link ON link_check_results (link_id, run_id);
