//! The closed sets this domain stores as lowercase words: a member's [`Status`], an action's
//! [`ActionState`] and its [`Purpose`]. The one place that decides which member transitions
//! are legal is [`Status::can_transition_to`]; every write of a status is guarded by the status
//! it expects (see `store`), so two jobs racing on one member cannot both win.
//!
//! ```text
//! (join) ──► pending ──► verified      answered the code
//!               │ ├────► approved      an admin lifted the mute by hand ("verified by admin")
//!               │ ├────► left          left the group
//!               │ ├────► removed       kicked by someone else ("rejected")
//!               │ ├────► unmanageable  the bot may not mute them
//!               │ └────► kicking       reminders ran out: the kick is in the outbox
//!               │           ├────► kicked        OneBot answered the kick ok
//!               │           ├────► left          the kick found them gone
//!               │           ├────► unmanageable  the bot may not kick them
//!               └───────────┴─ pending           the kick failed: tried again a period later
//!  any closed status ──► pending       joined again: a new round with a new code
//! ```
//!
//! A group's [`GroupState`] is `active` or `blocked` (the bot was found not manageable there;
//! nothing but reports is sent until an operator enables the group again).

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// Where a member stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Joined, has not answered; reminded, then kicked, by scans.
    Pending,
    /// Answered the code.
    Verified,
    /// An admin lifted the mute by hand: counted as verified.
    Approved,
    /// Reminders ran out: the kick is decided and waits in the outbox (not yet confirmed).
    Kicking,
    /// Kicked by the bot: OneBot answered the kick `ok`.
    Kicked,
    /// Left the group before answering.
    Left,
    /// Kicked by someone else before answering.
    Removed,
    /// The bot may not mute or kick them (not an admin, or they are an admin or the owner, or
    /// the bot left the group): verification stopped for this join.
    Unmanageable,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 8] = [
        Status::Pending,
        Status::Kicking,
        Status::Verified,
        Status::Approved,
        Status::Kicked,
        Status::Left,
        Status::Removed,
        Status::Unmanageable,
    ];

    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Kicking => "kicking",
            Status::Verified => "verified",
            Status::Approved => "approved",
            Status::Kicked => "kicked",
            Status::Left => "left",
            Status::Removed => "removed",
            Status::Unmanageable => "unmanageable",
        }
    }

    /// Whether the member's verification is over (for this join): neither `pending` nor
    /// `kicking`.
    pub fn is_closed(self) -> bool {
        !matches!(self, Status::Pending | Status::Kicking)
    }

    /// Whether a member may go from `self` to `next`. A new join (`pending` again) is allowed
    /// from every status: it starts a new round. `kicked` is reached only from `kicking` (the
    /// kick answered ok).
    pub fn can_transition_to(self, next: Status) -> bool {
        matches!(
            (self, next),
            (_, Status::Pending)
                | (
                    Status::Pending,
                    Status::Verified
                        | Status::Approved
                        | Status::Left
                        | Status::Removed
                        | Status::Unmanageable
                        | Status::Kicking
                )
                | (
                    Status::Kicking,
                    Status::Kicked | Status::Unmanageable | Status::Left
                )
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that is not one of a closed set.
#[derive(Debug, thiserror::Error)]
#[error("{word:?} is not a {what}; expected one of: {expected}")]
pub struct UnknownWord {
    /// The word.
    pub word: String,
    /// What it should have been.
    pub what: &'static str,
    /// The words allowed.
    pub expected: String,
}

fn parse_word<T: Copy>(
    s: &str,
    all: &[T],
    as_str: fn(T) -> &'static str,
    what: &'static str,
) -> Result<T, UnknownWord> {
    all.iter()
        .copied()
        .find(|v| as_str(*v) == s)
        .ok_or_else(|| UnknownWord {
            word: s.to_string(),
            what,
            expected: all
                .iter()
                .map(|v| as_str(*v))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

impl FromStr for Status {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_word(s, &Status::ALL, Status::as_str, "member status")
    }
}

/// Where a group stands (`verification_groups.state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupState {
    /// Scans and actions run.
    Active,
    /// The bot was found not manageable in the group: nothing but reports is sent and no scan
    /// decides anything until an operator runs `celeriac verification groups enable GROUP`.
    Blocked,
}

impl GroupState {
    /// Every state.
    pub const ALL: [GroupState; 2] = [GroupState::Active, GroupState::Blocked];

    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Active => "active",
            GroupState::Blocked => "blocked",
        }
    }
}

impl FromStr for GroupState {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_word(s, &GroupState::ALL, GroupState::as_str, "group state")
    }
}

/// Where an action of the outbox stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionState {
    /// To do.
    Pending,
    /// A drain is performing it (until its lease ends).
    Running,
    /// Done.
    Done,
    /// Not needed any more (the member or group was gone).
    Skipped,
    /// Given up: permanent failure, or transient ones `action_attempts` times.
    Failed,
}

impl ActionState {
    /// Every state.
    pub const ALL: [ActionState; 5] = [
        ActionState::Pending,
        ActionState::Running,
        ActionState::Done,
        ActionState::Skipped,
        ActionState::Failed,
    ];

    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionState::Pending => "pending",
            ActionState::Running => "running",
            ActionState::Done => "done",
            ActionState::Skipped => "skipped",
            ActionState::Failed => "failed",
        }
    }
}

impl FromStr for ActionState {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_word(s, &ActionState::ALL, ActionState::as_str, "action state")
    }
}

/// Why an action exists (what its success or failure means for the member).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Mute a new member.
    Mute,
    /// Tell a new member their code (its message id is kept, to recall it later).
    Welcome,
    /// Remind pending members (one group message for all of them).
    Remind,
    /// Announce the kicks.
    KickNotice,
    /// Kick a member whose reminders ran out.
    Kick,
    /// Lift the mute of a member who answered.
    Unmute,
    /// Tell the group a member answered.
    Verified,
    /// Tell the group an admin let a member in.
    Approved,
    /// Tell a member their answer was wrong.
    WrongCode,
    /// Recall the welcome message.
    Recall,
    /// Report a scan to an admin.
    Report,
}

impl Purpose {
    /// Every purpose.
    pub const ALL: [Purpose; 11] = [
        Purpose::Mute,
        Purpose::Welcome,
        Purpose::Remind,
        Purpose::KickNotice,
        Purpose::Kick,
        Purpose::Unmute,
        Purpose::Verified,
        Purpose::Approved,
        Purpose::WrongCode,
        Purpose::Recall,
        Purpose::Report,
    ];

    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Mute => "mute",
            Purpose::Welcome => "welcome",
            Purpose::Remind => "remind",
            Purpose::KickNotice => "kick_notice",
            Purpose::Kick => "kick",
            Purpose::Unmute => "unmute",
            Purpose::Verified => "verified",
            Purpose::Approved => "approved",
            Purpose::WrongCode => "wrong_code",
            Purpose::Recall => "recall",
            Purpose::Report => "report",
        }
    }
}

impl FromStr for Purpose {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_word(s, &Purpose::ALL, Purpose::as_str, "action purpose")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>().unwrap(), s);
        }
        for s in ActionState::ALL {
            assert_eq!(s.as_str().parse::<ActionState>().unwrap(), s);
        }
        for s in GroupState::ALL {
            assert_eq!(s.as_str().parse::<GroupState>().unwrap(), s);
        }
        for p in Purpose::ALL {
            assert_eq!(p.as_str().parse::<Purpose>().unwrap(), p);
        }
        let e = "done".parse::<Status>().unwrap_err().to_string();
        assert!(e.contains("pending, kicking, verified"), "{e}");
    }

    #[test]
    fn only_pending_and_kicking_members_move_except_by_a_new_join() {
        use Status::*;
        for from in Status::ALL {
            for to in Status::ALL {
                let expected = to == Pending
                    || (from == Pending && !matches!(to, Kicked))
                    || (from == Kicking && matches!(to, Kicked | Unmanageable | Left));
                assert_eq!(from.can_transition_to(to), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn the_migrations_check_the_same_words() {
        // The member statuses and group states as 0101 left them, the rest as 0100 made them.
        for sql in [
            include_str!("../../../migrations/sqlite/0101_verification_names.sql"),
            include_str!("../../../migrations/postgres/0101_verification_names.sql"),
        ] {
            let check = sql
                .split("status IN")
                .nth(1)
                .and_then(|s| s.split(')').next())
                .expect("a status CHECK");
            let words = check.matches('\'').count() / 2;
            assert_eq!(words, Status::ALL.len(), "{check}");
            for s in Status::ALL {
                assert!(check.contains(&format!("'{}'", s.as_str())), "{s}");
            }
            for s in GroupState::ALL {
                assert!(sql.contains(&format!("'{}'", s.as_str())), "{}", s.as_str());
            }
        }
        for sql in [
            include_str!("../../../migrations/sqlite/0100_verification.sql"),
            include_str!("../../../migrations/postgres/0100_verification.sql"),
        ] {
            for s in ActionState::ALL {
                assert!(sql.contains(&format!("'{}'", s.as_str())), "{}", s.as_str());
            }
            for p in Purpose::ALL {
                assert!(sql.contains(&format!("'{}'", p.as_str())), "{}", p.as_str());
            }
        }
    }
}
