use super::*;

/// The shared secret of RFC 4226 appendix D and RFC 6238 appendix B (SHA-1).
const RFC_SECRET: &[u8] = b"12345678901234567890";

#[test]
fn hotp_matches_rfc_4226_appendix_d() {
    let expected = [755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489];
    for (counter, want) in expected.into_iter().enumerate() {
        assert_eq!(hotp(RFC_SECRET, counter as u64, 6), want, "counter {counter}");
    }
}

#[test]
fn totp_matches_rfc_6238_appendix_b_sha1() {
    let vectors = [
        (59, 94287082),
        (1111111109, 7081804),
        (1111111111, 14050471),
        (1234567890, 89005924),
        (2000000000, 69279037),
        (20000000000, 65353130),
    ];
    for (time, want) in vectors {
        assert_eq!(hotp(RFC_SECRET, step_at(time), 8), want, "T = {time}");
    }
    // The 6-digit codes are the last six digits of the 8-digit ones.
    assert_eq!(code(RFC_SECRET, step_at(59)), "287082");
    assert_eq!(code(RFC_SECRET, step_at(1111111109)), "081804");
}

#[test]
fn verify_accepts_one_step_of_drift_and_names_the_step() {
    let now = 1111111111;
    let step = step_at(now);
    for drift in [-1i64, 0, 1] {
        let at = step.checked_add_signed(drift).unwrap();
        assert_eq!(verify(RFC_SECRET, &code(RFC_SECRET, at), now, None), Some(at), "drift {drift}");
    }
    assert_eq!(verify(RFC_SECRET, &code(RFC_SECRET, step + 2), now, None), None);
    assert_eq!(verify(RFC_SECRET, &code(RFC_SECRET, step - 2), now, None), None);
    assert_eq!(verify(RFC_SECRET, &format!(" {} ", code(RFC_SECRET, step)), now, None), Some(step));
}

#[test]
fn a_used_step_and_every_earlier_one_are_refused() {
    let now = 1234567890;
    let step = step_at(now);
    let current = code(RFC_SECRET, step);
    assert_eq!(verify(RFC_SECRET, &current, now, Some(step - 1)), Some(step));
    assert_eq!(verify(RFC_SECRET, &current, now, Some(step)), None, "replay");
    assert_eq!(verify(RFC_SECRET, &code(RFC_SECRET, step - 1), now, Some(step)), None, "older code after a newer one");
    assert_eq!(verify(RFC_SECRET, &code(RFC_SECRET, step + 1), now, Some(step)), Some(step + 1));
}

#[test]
fn malformed_codes_are_refused() {
    let now = 59;
    for bad in ["", "28708", "2870820", "28708a", "-87082", "２８７０８２"] {
        assert_eq!(verify(RFC_SECRET, bad, now, None), None, "{bad:?}");
    }
}

#[test]
fn base32_round_trips_and_matches_rfc_4648() {
    let vectors: [(&[u8], &str); 7] = [
        (b"", ""),
        (b"f", "MY"),
        (b"fo", "MZXQ"),
        (b"foo", "MZXW6"),
        (b"foob", "MZXW6YQ"),
        (b"fooba", "MZXW6YTB"),
        (b"foobar", "MZXW6YTBOI"),
    ];
    for (bytes, text) in vectors {
        assert_eq!(base32_encode(bytes), text);
        assert_eq!(base32_decode(text).unwrap(), bytes);
        assert_eq!(base32_decode(&text.to_lowercase()).unwrap(), bytes);
    }
    assert_eq!(base32_decode("MZXW 6YTB OI======").unwrap(), b"foobar");
    assert_eq!(base32_encode(RFC_SECRET), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    assert_eq!(base32_decode("MZ1W"), Err(BadBase32));
}

#[test]
fn otpauth_uri_names_issuer_account_and_parameters() {
    let uri = otpauth_uri("portcullis", "acme vendor", RFC_SECRET);
    assert_eq!(
        uri,
        "otpauth://totp/portcullis:acme%20vendor?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=portcullis\
         &algorithm=SHA1&digits=6&period=30"
    );
}
