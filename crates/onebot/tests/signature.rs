//! `X-Signature` verification against an independent HMAC-SHA1 computation and the RFC 2202
//! test vectors.

use celeriac_onebot::{sign, verify_signature, Error};
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// RFC 2202, HMAC-SHA1 test cases 1 and 2: (key, data, digest).
const VECTORS: [(&[u8], &[u8], &str); 2] = [
    (
        &[0x0b; 20],
        b"Hi There",
        "b617318655057264e28bc0b6fb378c8ef146be00",
    ),
    (
        b"Jefe",
        b"what do ya want for nothing?",
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
    ),
];

fn independent(key: &[u8], data: &[u8]) -> String {
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

#[test]
fn known_vectors_are_accepted() {
    for (key, data, digest) in VECTORS {
        assert_eq!(independent(key, data), digest, "the test's own HMAC");
        assert_eq!(sign(key, data), format!("sha1={digest}"));
        verify_signature(key, data, Some(&format!("sha1={digest}"))).unwrap();
        verify_signature(key, data, Some(&format!("sha1={}", digest.to_uppercase()))).unwrap();
    }
}

#[test]
fn a_real_looking_event_body() {
    let body = br#"{"time":1515204254,"self_id":10001000,"post_type":"message","message_type":"private","sub_type":"friend","message_id":12,"user_id":12345678,"message":"hi","raw_message":"hi","font":456,"sender":{"nickname":"n"}}"#;
    let header = format!("sha1={}", independent(b"secret", body));
    verify_signature(b"secret", body, Some(&header)).unwrap();
}

#[test]
fn bad_missing_and_foreign_signatures_are_refused() {
    let (key, data, digest) = VECTORS[0];
    let reason = |header: Option<&str>| match verify_signature(key, data, header) {
        Err(Error::BadSignature(reason)) => reason,
        other => panic!("{header:?} accepted: {other:?}"),
    };
    assert!(reason(None).contains("no X-Signature"));
    // One hex digit changed.
    let mut flipped = digest.to_string();
    flipped.replace_range(0..1, "c");
    assert!(reason(Some(&format!("sha1={flipped}"))).contains("does not match"));
    // Right digest, wrong algorithm label; and a SHA-256-length value.
    assert!(reason(Some(&format!("sha256={digest}"))).contains("sha1="));
    assert!(reason(Some(digest)).contains("sha1="));
    assert!(reason(Some(&format!("sha1={digest}{digest}"))).contains("does not match"));
    assert!(reason(Some("sha1=zz")).contains("not hex"));
    assert!(reason(Some("sha1=")).contains("does not match"));
    // Right header, other body or other key.
    let header = format!("sha1={digest}");
    assert!(verify_signature(key, b"Hi There!", Some(&header)).is_err());
    assert!(verify_signature(b"other", data, Some(&header)).is_err());
    let e = verify_signature(b"other", data, Some(&header)).unwrap_err();
    assert!(e.to_string().contains("onebot.secret"), "{e}");
}
