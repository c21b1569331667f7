//! The `X-Signature` header of OneBot's HTTP POST event reports: `sha1=<hex>`, the HMAC-SHA1 of
//! the raw body keyed with the configured secret (`onebot.secret`). Verify it on the raw bytes,
//! before parsing: re-serialized JSON would not match.

use crate::error::{Error, Result};
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// The header OneBot signs event reports with.
pub const SIGNATURE_HEADER: &str = "X-Signature";

/// Check `header` (the `X-Signature` value, `None` when absent) against `body` and `secret`.
/// The comparison is constant-time (`hmac`'s `verify_slice`). The error says which check
/// failed (missing, not `sha1=`, not hex, mismatch), never the expected value.
pub fn verify_signature(secret: &[u8], body: &[u8], header: Option<&str>) -> Result<()> {
    let header = header.ok_or(Error::BadSignature("no X-Signature header"))?;
    let hex_part = header
        .trim()
        .strip_prefix("sha1=")
        .ok_or(Error::BadSignature(
            "the header is not of the form sha1=<hex>",
        ))?;
    let claimed =
        hex::decode(hex_part).map_err(|_| Error::BadSignature("the signature is not hex"))?;
    mac(secret, body)
        .verify_slice(&claimed)
        .map_err(|_| Error::BadSignature("the signature does not match the body"))
}

/// The `X-Signature` value for `body` under `secret` (what OneBot sends; used by the fake
/// server and by tests).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    format!(
        "sha1={}",
        hex::encode(mac(secret, body).finalize().into_bytes())
    )
}

fn mac(secret: &[u8], body: &[u8]) -> Hmac<Sha1> {
    // HMAC takes keys of any length (long ones are hashed first): this cannot fail.
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let sig = sign(b"k", b"{}");
        verify_signature(b"k", b"{}", Some(&sig)).unwrap();
        assert!(verify_signature(b"k2", b"{}", Some(&sig)).is_err());
        assert!(verify_signature(b"k", b"{ }", Some(&sig)).is_err());
    }
}
