//! TOTP secrets and codes: base32 decodes anything or refuses it, round-trips what it
//! encodes, and checking a code against any secret, time and text never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_proto::totp::{DIGITS, base32_decode, base32_encode, code, otpauth_uri, verify};

fuzz_target!(|data: &[u8]| {
    assert_eq!(base32_decode(&base32_encode(data)).as_deref(), Ok(data));
    let text = String::from_utf8_lossy(data);
    let Ok(secret) = base32_decode(&text) else { return };
    // Whatever text decoded, the bytes it gave encode to text that decodes to them.
    assert_eq!(base32_decode(&base32_encode(&secret)), Ok(secret.clone()));
    let uri = otpauth_uri(&text, &text, &secret);
    assert!(uri.starts_with("otpauth://totp/") && !uri.contains(' '), "{uri}");

    let mut word = [0u8; 8];
    let n = data.len().min(8);
    word[..n].copy_from_slice(&data[..n]);
    let now = u64::from_le_bytes(word);
    let expected = code(&secret, now / 30);
    assert_eq!(expected.len(), DIGITS as usize);
    // The current step matches, unless a neighbour's code happens to be the same.
    let step = verify(&secret, &expected, now, None).expect("the current code is accepted");
    assert!(step.abs_diff(now / 30) <= 1 && code(&secret, step) == expected);
    assert_eq!(verify(&secret, &expected, now, Some(now / 30 + 1)), None, "a used step is never reused");
    let _ = verify(&secret, &text, now, Some(now / 30));
});
