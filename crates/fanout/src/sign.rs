//! Standard Webhooks signing: a request carries `webhook-id` (the same on every retry of one
//! delivery: the receiver's idempotency key), `webhook-timestamp` (Unix seconds) and
//! `webhook-signature: v1,<base64 of HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, where the
//! key is the secret `whsec_<base64>` decoded. See `docs/fanout.md` for a receiver's check.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The prefix of a webhook secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Bytes of a generated secret's key.
const SECRET_BYTES: usize = 24;

/// A webhook secret: `whsec_` and the base64 of its key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(whsec_…)")
    }
}

impl Secret {
    /// Read `whsec_<base64>`; the error says what is wrong, never the secret.
    pub fn parse(text: &str) -> Result<Secret, String> {
        let b64 = text.strip_prefix(SECRET_PREFIX).ok_or_else(|| {
            format!("a webhook secret starts with {SECRET_PREFIX} followed by base64 (omit --secret to have one generated)")
        })?;
        let key = STANDARD
            .decode(b64)
            .map_err(|_| format!("the part after {SECRET_PREFIX} is not base64"))?;
        if !(16..=64).contains(&key.len()) {
            return Err(format!(
                "the key of a webhook secret must be 16 to 64 bytes, got {}",
                key.len()
            ));
        }
        Ok(Secret { key })
    }

    /// A new random secret.
    pub fn generate() -> Secret {
        Secret {
            key: (0..SECRET_BYTES).map(|_| fastrand::u8(..)).collect(),
        }
    }

    /// `whsec_<base64>`, as stored and shown once to the operator.
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.key))
    }

    /// `v1,<signature>` of a message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_and_bad_ones_are_named() {
        let s = Secret::generate();
        assert_eq!(Secret::parse(&s.to_text()).unwrap(), s);
        assert!(Secret::parse("abc").unwrap_err().contains("whsec_"));
        assert!(Secret::parse("whsec_!!!").unwrap_err().contains("base64"));
        assert!(Secret::parse("whsec_AAAA")
            .unwrap_err()
            .contains("16 to 64"));
        assert!(!format!("{s:?}").contains(&s.to_text()[6..]));
    }

    #[test]
    fn the_signature_is_stable_and_covers_id_timestamp_and_body() {
        let s = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let a = s.sign("msg_1", 1_700_000_000, b"{}");
        assert!(a.starts_with("v1,"));
        assert_eq!(a, s.sign("msg_1", 1_700_000_000, b"{}"));
        assert_ne!(a, s.sign("msg_2", 1_700_000_000, b"{}"));
        assert_ne!(a, s.sign("msg_1", 1_700_000_001, b"{}"));
        assert_ne!(a, s.sign("msg_1", 1_700_000_000, b"{ }"));
    }
}
