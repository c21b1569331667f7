-- The verification tables under the names of issue 11 (SQLite), with the groups table.
--
-- Members: `due_at` is `next_warning_at`, `last_warned_at` is `last_warning_at`,
-- `welcome_message_id` is `prompt_message_id`, `closed_at` is `ended_at`; a new status
-- `kicking` (the kick is decided and in the outbox; `kicked` is written only when OneBot
-- answers ok). SQLite cannot change a CHECK in place: the table is rebuilt.
-- Groups: the per-group switch (`enabled`) and `state` (`blocked` once the bot was found not
-- manageable there, until an operator enables the group again).
-- Actions: the reply's `retcode`, and an index for the retention sweep that bounds the log.

CREATE TABLE verification_members_new (
    group_id          INTEGER NOT NULL,
    user_id           INTEGER NOT NULL,
    bot_id            INTEGER NOT NULL,
    round             INTEGER NOT NULL DEFAULT 1,
    status            TEXT    NOT NULL CHECK (status IN
                          ('pending', 'kicking', 'verified', 'approved', 'kicked', 'left', 'removed', 'unmanageable')),
    code              TEXT    NOT NULL,
    joined_at         INTEGER NOT NULL,
    warnings_left     INTEGER NOT NULL,
    last_warning_at   INTEGER,
    next_warning_at   INTEGER NOT NULL,
    wrong_answers     INTEGER NOT NULL DEFAULT 0,
    prompt_message_id INTEGER,
    ended_at          INTEGER,
    detail            TEXT    NOT NULL DEFAULT '',
    updated_at        INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
);

INSERT INTO verification_members_new (group_id, user_id, bot_id, round, status, code, joined_at,
    warnings_left, last_warning_at, next_warning_at, wrong_answers, prompt_message_id, ended_at,
    detail, updated_at)
SELECT group_id, user_id, bot_id, round, status, code, joined_at, warnings_left, last_warned_at,
    due_at, wrong_answers, welcome_message_id, closed_at, detail, updated_at
FROM verification_members;

DROP TABLE verification_members;
ALTER TABLE verification_members_new RENAME TO verification_members;

-- What a scan reads: the groups with pending members due, then one group's due members.
CREATE INDEX verification_members_due ON verification_members (status, next_warning_at);
CREATE INDEX verification_members_group_due ON verification_members (group_id, status, next_warning_at);
-- What an answer reads: a user's pending rows in every group.
CREATE INDEX verification_members_user ON verification_members (user_id, status);

CREATE TABLE verification_groups (
    group_id   INTEGER PRIMARY KEY,
    enabled    INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    state      TEXT    NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'blocked')),
    detail     TEXT    NOT NULL DEFAULT '',
    blocked_at INTEGER,
    updated_at INTEGER NOT NULL
);

ALTER TABLE verification_actions ADD COLUMN retcode INTEGER;
-- What the retention sweep reads: finished actions by age.
CREATE INDEX verification_actions_finished ON verification_actions (finished_at);
