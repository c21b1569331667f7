-- Friend links and the runs of the `links.check` job (PostgreSQL).
-- Times are milliseconds since the Unix epoch; flags are 0/1.

CREATE TABLE links (
    id                   BIGSERIAL PRIMARY KEY,
    name                 TEXT    NOT NULL UNIQUE,
    url                  TEXT    NOT NULL,
    is_active            SMALLINT NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    is_show              SMALLINT NOT NULL DEFAULT 1 CHECK (is_show IN (0, 1)),
    not_show_reason      TEXT    NOT NULL DEFAULT '',
    last_status          BIGINT,
    last_error_kind      TEXT,
    last_checked_at      BIGINT,
    consecutive_failures BIGINT  NOT NULL DEFAULT 0,
    created_at           BIGINT  NOT NULL,
    updated_at           BIGINT  NOT NULL
);

CREATE TABLE link_check_runs (
    id          BIGSERIAL PRIMARY KEY,
    job_id      TEXT,
    state       TEXT    NOT NULL,
    site_link   TEXT,
    started_at  BIGINT  NOT NULL,
    finished_at BIGINT,
    active_num  BIGINT  NOT NULL DEFAULT 0,
    checked     BIGINT  NOT NULL DEFAULT 0,
    ok          BIGINT  NOT NULL DEFAULT 0,
    failed      BIGINT  NOT NULL DEFAULT 0,
    to_not_show BIGINT  NOT NULL DEFAULT 0,
    to_show     BIGINT  NOT NULL DEFAULT 0,
    whitelisted BIGINT  NOT NULL DEFAULT 0,
    fetches     BIGINT  NOT NULL DEFAULT 0,
    error       TEXT
);

CREATE TABLE link_check_results (
    run_id     BIGINT  NOT NULL REFERENCES link_check_runs (id) ON DELETE CASCADE,
    link_id    BIGINT  NOT NULL,
    name       TEXT    NOT NULL,
    url        TEXT    NOT NULL,
    outcome    TEXT    NOT NULL,
    status     BIGINT,
    final_url  TEXT,
    redirects  BIGINT  NOT NULL DEFAULT 0,
    attempts   BIGINT  NOT NULL DEFAULT 0,
    elapsed_ms BIGINT  NOT NULL DEFAULT 0,
    error      TEXT,
    change     TEXT,
    PRIMARY KEY (run_id, link_id)
);

-- For a link's last check time (newest run with a result for it).
CREATE INDEX link_check_results_by_link ON link_check_results (link_id, run_id);
