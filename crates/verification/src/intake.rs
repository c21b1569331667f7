//! What the event receiver (`celeriac onebot receive`) hands to this domain: which events it
//! wants, and the job for one, whose id is derived from the event itself so that a duplicate
//! delivery (an implementation retrying its POST, two reporters of one bot) enqueues one job.

use crate::code::looks_like_answer;
use crate::config::VerificationConfig;
use crate::EVENT_KIND;
use celeriac_onebot::event::BanKind;
use celeriac_onebot::Event;
use celeriac_producer::NewJob;
use serde_json::Value;
use sha1::{Digest, Sha1};

/// Whether `event` concerns verification: joins and leaves of covered groups, mutes lifted by
/// someone else, and messages offering a code. Everything else (chat, heartbeats) never
/// becomes a job.
pub fn wants(event: &Event, config: &VerificationConfig) -> bool {
    let answer = |text: &str| looks_like_answer(text, config.code_length);
    match event {
        Event::GroupIncrease(e) => e.user_id != e.self_id && config.covers(e.group_id),
        Event::GroupDecrease(e) => config.covers(e.group_id),
        Event::GroupBan(e) => {
            e.sub_type == BanKind::LiftBan
                && e.operator_id.is_some_and(|op| op != e.self_id)
                && config.covers(e.group_id)
        }
        Event::PrivateMessage(m) => answer(&m.text),
        Event::GroupMessage(m) => config.covers(m.group_id) && answer(&m.text),
        _ => false,
    }
}

/// The `verification.event` job of an event: its payload is the event as received, its id
/// `verification.event:<SHA-1 of the event's canonical JSON>` (keys sorted, no spaces), so the
/// same event however formatted gives the same id, and enqueueing it again returns the first
/// job.
pub fn job(event: &Value) -> NewJob {
    NewJob::new(EVENT_KIND, event.clone()).id(event_job_id(event))
}

/// The job id of an event.
pub fn event_job_id(event: &Value) -> String {
    // serde_json's maps are sorted (no preserve_order feature), so this is canonical.
    let canonical = serde_json::to_vec(event).unwrap_or_default();
    format!("{EVENT_KIND}:{}", hex::encode(Sha1::digest(&canonical)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(v: Value) -> Event {
        Event::from_value(v).unwrap()
    }

    #[test]
    fn the_id_ignores_formatting_and_key_order() {
        let a: Value =
            serde_json::from_str(r#"{"post_type":"notice","time":1,"user_id":5}"#).unwrap();
        let b: Value =
            serde_json::from_str("{ \"user_id\": 5, \"time\": 1,\n \"post_type\": \"notice\" }")
                .unwrap();
        assert_eq!(event_job_id(&a), event_job_id(&b));
        let c = json!({"post_type": "notice", "time": 2, "user_id": 5});
        assert_ne!(event_job_id(&a), event_job_id(&c));
        assert!(event_job_id(&a).starts_with("verification.event:"));
        assert!(event_job_id(&a).len() <= 200);
    }

    #[test]
    fn only_what_verification_needs_is_wanted() {
        let config = VerificationConfig {
            groups: vec![100],
            ..VerificationConfig::default()
        };
        let join = |group: i64, user: i64| {
            event(
                json!({"post_type": "notice", "notice_type": "group_increase", "sub_type": "approve",
                "time": 1, "self_id": 10000, "group_id": group, "user_id": user, "operator_id": 0}),
            )
        };
        assert!(wants(&join(100, 1001), &config));
        assert!(!wants(&join(200, 1001), &config), "an uncovered group");
        assert!(!wants(&join(100, 10000), &config), "the bot itself joining");
        let private = |text: &str| {
            event(
                json!({"post_type": "message", "message_type": "private", "sub_type": "group",
                "time": 1, "self_id": 10000, "message_id": 1, "user_id": 1001, "message": text}),
            )
        };
        assert!(wants(&private("my code is 123456"), &config));
        assert!(!wants(&private("hello"), &config));
        let heartbeat = event(
            json!({"post_type": "meta_event", "meta_event_type": "heartbeat",
            "time": 1, "self_id": 10000, "interval": 5000}),
        );
        assert!(!wants(&heartbeat, &config));
        let lift = |op: i64| {
            event(
                json!({"post_type": "notice", "notice_type": "group_ban", "sub_type": "lift_ban",
                "time": 1, "self_id": 10000, "group_id": 100, "user_id": 1001, "operator_id": op, "duration": 0}),
            )
        };
        assert!(wants(&lift(2001), &config));
        assert!(!wants(&lift(10000), &config), "our own unmute");
    }
}
