-- The verification domain (SQLite): one row per (group, member) under verification, and the
-- outbox of OneBot actions its transitions decide. Times are milliseconds since the Unix epoch
-- (UTC); statuses and states are closed sets of lowercase words (see docs/verification.md).

CREATE TABLE verification_members (
    group_id           INTEGER NOT NULL,
    user_id            INTEGER NOT NULL,
    bot_id             INTEGER NOT NULL,
    round              INTEGER NOT NULL DEFAULT 1,
    status             TEXT    NOT NULL CHECK (status IN
                           ('pending', 'verified', 'approved', 'kicked', 'left', 'removed', 'unmanageable')),
    code               TEXT    NOT NULL,
    joined_at          INTEGER NOT NULL,
    warnings_left      INTEGER NOT NULL,
    last_warned_at     INTEGER,
    due_at             INTEGER NOT NULL,
    wrong_answers      INTEGER NOT NULL DEFAULT 0,
    welcome_message_id INTEGER,
    closed_at          INTEGER,
    detail             TEXT    NOT NULL DEFAULT '',
    updated_at         INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
);

-- What a scan reads: pending members whose next step is due.
CREATE INDEX verification_members_due ON verification_members (status, due_at);
-- What an answer reads: a user's pending rows in every group.
CREATE INDEX verification_members_user ON verification_members (user_id, status);

CREATE TABLE verification_actions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    bot_id        INTEGER NOT NULL,
    group_id      INTEGER NOT NULL,
    user_id       INTEGER,
    round         INTEGER,
    purpose       TEXT    NOT NULL CHECK (purpose IN
                      ('mute', 'welcome', 'remind', 'kick_notice', 'kick', 'unmute', 'verified',
                       'approved', 'wrong_code', 'recall', 'report')),
    action        TEXT    NOT NULL CHECK (action IN
                      ('set_group_ban', 'set_group_kick', 'send_group_msg', 'send_private_msg', 'delete_msg')),
    params        TEXT    NOT NULL,
    state         TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN
                      ('pending', 'running', 'done', 'skipped', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    claimed_until INTEGER,
    error         TEXT,
    result        TEXT,
    created_at    INTEGER NOT NULL,
    finished_at   INTEGER
);

-- What a drain reads: a group's open actions in order.
CREATE INDEX verification_actions_open ON verification_actions (group_id, state, id);
-- A member's history.
CREATE INDEX verification_actions_member ON verification_actions (group_id, user_id, id);
