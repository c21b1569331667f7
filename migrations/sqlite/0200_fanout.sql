-- The fan-out domain (SQLite): topics and their subscribers, broadcasts (the message stored
-- once) and one delivery row per distinct recipient of a broadcast. Times are milliseconds
-- since the Unix epoch (UTC); channels, statuses and states are closed sets of lowercase words
-- (see docs/fanout.md).

CREATE TABLE fanout_topics (
    name       TEXT    NOT NULL PRIMARY KEY,
    created_at INTEGER NOT NULL
);

CREATE TABLE fanout_subscribers (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    topic                TEXT    NOT NULL REFERENCES fanout_topics (name),
    channel              TEXT    NOT NULL CHECK (channel IN ('webhook', 'onebot_user', 'onebot_group')),
    target               TEXT    NOT NULL,
    secret               TEXT,
    status               TEXT    NOT NULL DEFAULT 'active' CHECK (status IN
                             ('active', 'unsubscribed', 'disabled')),
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_error           TEXT,
    disabled_at          INTEGER,
    disabled_reason      TEXT,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    UNIQUE (topic, channel, target)
);

CREATE TABLE fanout_broadcasts (
    id           TEXT    NOT NULL PRIMARY KEY,
    topic        TEXT,
    queue        TEXT    NOT NULL,
    message      TEXT    NOT NULL,
    total        INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    completed_at INTEGER
);

CREATE TABLE fanout_deliveries (
    broadcast_id  TEXT    NOT NULL REFERENCES fanout_broadcasts (id),
    recipient     TEXT    NOT NULL,
    subscriber_id INTEGER,
    channel       TEXT    NOT NULL CHECK (channel IN ('webhook', 'onebot_user', 'onebot_group')),
    target        TEXT    NOT NULL,
    secret        TEXT,
    state         TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN
                      ('pending', 'delivered', 'failed', 'skipped')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_status   INTEGER,
    last_error    TEXT,
    response      TEXT,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (broadcast_id, recipient)
);

-- A broadcast's results by state.
CREATE INDEX fanout_deliveries_state ON fanout_deliveries (broadcast_id, state);
