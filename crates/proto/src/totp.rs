//! Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP): HMAC-SHA1, 30-second
//! steps, 6 digits, one step of clock drift either way; base32 secrets and `otpauth://` URIs.
//!
//! Pure functions: the caller supplies the time and remembers which step was last used,
//! so a code is accepted once.

#[cfg(test)]
mod tests;

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// Seconds per step.
pub const STEP_SECS: u64 = 30;
/// Digits in a code.
pub const DIGITS: u32 = 6;
/// Steps of clock drift accepted either way.
pub const DRIFT_STEPS: u64 = 1;
/// Bytes in a secret made by the gateway (160 bits, as RFC 4226 recommends).
pub const SECRET_LEN: usize = 20;

/// The HOTP value of `counter` with `digits` digits (RFC 4226 section 5.3).
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let word = u32::from_be_bytes([digest[offset], digest[offset + 1], digest[offset + 2], digest[offset + 3]]);
    (word & 0x7fff_ffff) % 10u32.pow(digits)
}

/// The step a Unix time falls in.
pub fn step_at(unix_secs: u64) -> u64 {
    unix_secs / STEP_SECS
}

/// The code for `step`, zero-padded to [`DIGITS`].
pub fn code(secret: &[u8], step: u64) -> String {
    format!("{:0width$}", hotp(secret, step, DIGITS), width = DIGITS as usize)
}

/// The step whose code `given` is, among the steps within [`DRIFT_STEPS`] of `unix_secs`
/// and after `last_used` (a step accepted before is never accepted again).
///
/// Every candidate step is computed and compared without stopping early, so the time
/// taken says nothing about which (if any) matched.
pub fn verify(secret: &[u8], given: &str, unix_secs: u64, last_used: Option<u64>) -> Option<u64> {
    let given = given.trim();
    let well_formed = given.len() == DIGITS as usize && given.bytes().all(|b| b.is_ascii_digit());
    let now = step_at(unix_secs);
    let mut matched = None;
    for step in now.saturating_sub(DRIFT_STEPS)..=now + DRIFT_STEPS {
        let expected = code(secret, step);
        let same = constant_time_eq(expected.as_bytes(), given.as_bytes());
        let fresh = last_used.is_none_or(|last| step > last);
        if same && fresh && well_formed && matched.is_none() {
            matched = Some(step);
        }
    }
    matched
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding, as authenticator apps expect.
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    for chunk in bytes.chunks(5) {
        let mut block = [0u8; 5];
        block[..chunk.len()].copy_from_slice(chunk);
        let bits = u64::from_be_bytes([0, 0, 0, block[0], block[1], block[2], block[3], block[4]]);
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..chars {
            let index = (bits >> (35 - i * 5)) & 0x1f;
            out.push(char::from(BASE32[index as usize]));
        }
    }
    out
}

/// Why a base32 text is not a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not base32 (RFC 4648: A-Z and 2-7)")]
pub struct BadBase32;

/// Decodes base32, ignoring case, spaces and `=` padding.
pub fn base32_decode(text: &str) -> Result<Vec<u8>, BadBase32> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in text.bytes().filter(|b| !matches!(b, b' ' | b'=' | b'-')) {
        let upper = byte.to_ascii_uppercase();
        let value = BASE32.iter().position(|&c| c == upper).ok_or(BadBase32)? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// The `otpauth://totp/...` URI an authenticator app reads from a QR code.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        percent_encode(issuer),
        percent_encode(account),
        base32_encode(secret),
        percent_encode(issuer),
    )
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
