-- The verification tables under the names of issue 11 (PostgreSQL), with the groups table.
--
-- Members: `due_at` is `next_warning_at`, `last_warned_at` is `last_warning_at`,
-- `welcome_message_id` is `prompt_message_id`, `closed_at` is `ended_at`; a new status
-- `kicking` (the kick is decided and in the outbox; `kicked` is written only when OneBot
-- answers ok).
-- Groups: the per-group switch (`enabled`) and `state` (`blocked` once the bot was found not
-- manageable there, until an operator enables the group again).
-- Actions: the reply's `retcode`, and an index for the retention sweep that bounds the log.

ALTER TABLE verification_members RENAME COLUMN due_at TO next_warning_at;
ALTER TABLE verification_members RENAME COLUMN last_warned_at TO last_warning_at;
ALTER TABLE verification_members RENAME COLUMN welcome_message_id TO prompt_message_id;
ALTER TABLE verification_members RENAME COLUMN closed_at TO ended_at;
ALTER TABLE verification_members DROP CONSTRAINT verification_members_status_check;
ALTER TABLE verification_members ADD CONSTRAINT verification_members_status_check CHECK (status IN
    ('pending', 'kicking', 'verified', 'approved', 'kicked', 'left', 'removed', 'unmanageable'));

-- One group's due members (the scan's per-group read).
CREATE INDEX verification_members_group_due ON verification_members (group_id, status, next_warning_at);

CREATE TABLE verification_groups (
    group_id   BIGINT  PRIMARY KEY,
    enabled    BIGINT  NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    state      TEXT    NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'blocked')),
    detail     TEXT    NOT NULL DEFAULT '',
    blocked_at BIGINT,
    updated_at BIGINT  NOT NULL
);

ALTER TABLE verification_actions ADD COLUMN retcode BIGINT;
-- What the retention sweep reads: finished actions by age.
CREATE INDEX verification_actions_finished ON verification_actions (finished_at);
