//! The served TLS certificate: that it parses, is valid now and for 30 more days, and names
//! every `public_addr`. The validity dates are read from the DER directly (a few TLVs deep);
//! names are checked by webpki, as a client would.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::ParsedCertificate;

use super::Check;
use super::facts::CertFacts;

/// A certificate expiring sooner than this is a finding.
pub const RENEW_BEFORE_SECS: i64 = 30 * 86_400;

/// `tls.cert` and `tls.names`.
pub fn checks(public_addr: &[String], cert: &CertFacts, now: i64) -> Vec<Check> {
    let path = cert.path.display();
    let pem = match &cert.pem {
        Ok(Some(pem)) => pem,
        Ok(None) if cert.configured => {
            return vec![
                Check::finding(
                    "tls.cert",
                    format!("{path} (tls.cert) does not exist"),
                    "point tls.cert at the certificate file",
                ),
                no_names(),
            ];
        }
        Ok(None) => {
            return vec![
                Check::skipped(
                    "tls.cert",
                    format!("{path} not made yet: the gateway makes a self-signed one on first start"),
                ),
                no_names(),
            ];
        }
        Err(err) => {
            let fix = "make it readable by the gateway's user (and by doctor)";
            return vec![Check::finding("tls.cert", format!("cannot read {path}: {err}"), fix), no_names()];
        }
    };
    let renew = if cert.configured {
        format!("renew the certificate, replace {path} (and tls.key), then restart the gateway")
    } else {
        format!(
            "move {path} and tls_key.pem out of the data dir and restart: the gateway makes a new self-signed certificate (agents pin it: re-join them with new tokens)"
        )
    };
    let leaf = CertificateDer::pem_slice_iter(pem.as_bytes()).next().and_then(Result::ok);
    let Some((leaf, (not_before, not_after))) = leaf.and_then(|der| validity(&der).map(|v| (der, v))) else {
        return vec![Check::finding("tls.cert", format!("{path} holds no valid X.509 certificate"), renew), no_names()];
    };
    let date = |secs: i64| portcullis_gateway::store::rfc3339(Some(secs));
    let days_left = (not_after - now) / 86_400;
    let validity = if now < not_before {
        Check::finding("tls.cert", format!("{path} is not valid before {}", date(not_before)), renew.clone())
    } else if now >= not_after {
        Check::finding("tls.cert", format!("{path} expired on {}", date(not_after)), renew.clone())
    } else if not_after - now < RENEW_BEFORE_SECS {
        let detail = format!("{path} expires on {} (in {days_left} days)", date(not_after));
        Check::finding("tls.cert", detail, renew.clone())
    } else {
        Check::ok("tls.cert", format!("{path} valid until {}", date(not_after)))
    };
    vec![validity, names(public_addr, &leaf, cert.configured, &renew)]
}

fn no_names() -> Check {
    Check::skipped("tls.names", "no certificate to check")
}

fn names(public_addr: &[String], leaf: &CertificateDer<'_>, configured: bool, renew: &str) -> Check {
    if public_addr.is_empty() {
        return Check::skipped("tls.names", "no listen.public_addr to check the certificate's names against");
    }
    let Ok(parsed) = ParsedCertificate::try_from(leaf) else {
        return Check::finding("tls.names", "webpki cannot parse the certificate", renew.to_string());
    };
    let hosts: Vec<&str> = public_addr.iter().map(|a| portcullis_gateway::config::host_of(a)).collect();
    let missing: Vec<&str> = hosts
        .iter()
        .copied()
        .filter(|host| {
            let name = ServerName::try_from(*host);
            !name.is_ok_and(|name| rustls::client::verify_server_name(&parsed, &name).is_ok())
        })
        .collect();
    if missing.is_empty() {
        return Check::ok("tls.names", format!("the certificate names {}", hosts.join(", ")));
    }
    let list = missing.join(", ");
    let detail = format!(
        "the certificate does not name {list} (listen.public_addr): clients reaching it there get a name mismatch"
    );
    let fix = if configured {
        format!("get a certificate whose subjectAltName includes {list}")
    } else {
        format!("the self-signed certificate keeps the names public_addr had when it was made; {renew}")
    };
    Check::finding("tls.names", detail, fix)
}

/// `notBefore` and `notAfter` of a DER certificate, as Unix seconds.
pub fn validity(der: &[u8]) -> Option<(i64, i64)> {
    let (0x30, cert, _) = tlv(der)? else { return None };
    let (0x30, tbs, _) = tlv(cert)? else { return None };
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.2; // [0] version
    }
    for _ in 0..3 {
        rest = tlv(rest)?.2; // serialNumber, signature, issuer
    }
    let (0x30, times, _) = tlv(rest)? else { return None };
    let (tag, not_before, rest) = tlv(times)?;
    let not_before = time(tag, not_before)?;
    let (tag, not_after, _) = tlv(rest)?;
    Some((not_before, time(tag, not_after)?))
}

/// One DER tag-length-value at the start of `input`: `(tag, value, rest)`.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        (rest[..n].iter().fold(0usize, |acc, b| acc << 8 | usize::from(*b)), &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// UTCTime (`YYMMDDHHMMSSZ`, tag 0x17) or GeneralizedTime (`YYYYMMDDHHMMSSZ`, 0x18) as Unix seconds.
fn time(tag: u8, value: &[u8]) -> Option<i64> {
    let digits = value.strip_suffix(b"Z")?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let num = |s: &[u8]| s.iter().fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy = num(&digits[..2]);
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (0x18, 14) => (num(&digits[..4]), &digits[4..]),
        _ => return None,
    };
    let [month, day, hour, minute, second] = [0, 2, 4, 6, 8].map(|i| num(&rest[i..i + 2]));
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::doctor::Status;

    const DAY: i64 = 86_400;

    /// A self-signed certificate for `names`, valid between two dates (y, m, d).
    fn cert(names: &[&str], from: (i32, u8, u8), until: (i32, u8, u8)) -> String {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        params.not_after = rcgen::date_time_ymd(until.0, until.1, until.2);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    fn facts(pem: Option<&str>, configured: bool) -> CertFacts {
        CertFacts { path: PathBuf::from("/d/tls_cert.pem"), configured, pem: Ok(pem.map(str::to_string)) }
    }

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::pem_slice_iter(pem.as_bytes()).next().unwrap().unwrap().as_ref().to_vec()
    }

    #[test]
    fn validity_reads_utc_and_generalized_times() {
        // 2030-06-15 is UTCTime, 2060-01-01 GeneralizedTime (RFC 5280: from 2050 on).
        let pem = cert(&["a"], (2030, 6, 15), (2060, 1, 1));
        assert_eq!(validity(&der(&pem)), Some((1_907_712_000, 2_840_140_800)));
        assert_eq!(validity(b"\x30\x03\x02\x01\x01"), None);
        assert_eq!(validity(b""), None);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(time(0x17, b"491231235959Z"), Some(days_from_civil(2049, 12, 31) * DAY + 86_399));
        assert_eq!(time(0x17, b"500101000000Z"), Some(days_from_civil(1950, 1, 1) * DAY));
        assert_eq!(time(0x18, b"20301301000000Z"), None);
        assert_eq!(time(0x17, b"3001010000Z"), None);
    }

    #[test]
    fn certificate_checks() {
        let now = days_from_civil(2030, 1, 1) * DAY;
        let good = cert(&["gw.example.com", "10.0.0.5", "localhost"], (2029, 1, 1), (2031, 1, 1));
        let soon = cert(&["gw.example.com"], (2029, 1, 1), (2030, 1, 20));
        let expired = cert(&["gw.example.com"], (2028, 1, 1), (2029, 12, 31));
        let future = cert(&["gw.example.com"], (2030, 2, 1), (2031, 1, 1));
        let public = ["gw.example.com:443".to_string(), "10.0.0.5:3080".to_string()];
        let cases: Vec<(&str, CertFacts, &[String], Status, Status, &str)> = vec![
            ("good", facts(Some(&good), false), &public, Status::Ok, Status::Ok, "valid until 2031-01-01"),
            ("no public_addr", facts(Some(&good), false), &[], Status::Ok, Status::Skipped, ""),
            ("expiring", facts(Some(&soon), true), &public[..1], Status::Finding, Status::Ok, "in 19 days"),
            (
                "expired",
                facts(Some(&expired), true),
                &public[..1],
                Status::Finding,
                Status::Ok,
                "expired on 2029-12-31",
            ),
            ("not yet", facts(Some(&future), true), &public[..1], Status::Finding, Status::Ok, "not valid before"),
            ("wrong ip", facts(Some(&soon), false), &public, Status::Finding, Status::Finding, ""),
            ("garbage", facts(Some("not a cert"), false), &public, Status::Finding, Status::Skipped, "no valid X.509"),
            ("missing self-signed", facts(None, false), &public, Status::Skipped, Status::Skipped, "first start"),
            ("missing configured", facts(None, true), &public, Status::Finding, Status::Skipped, "does not exist"),
        ];
        for (name, facts, public, want_cert, want_names, text) in cases {
            let out = checks(public, &facts, now);
            assert_eq!((out[0].status, out[1].status), (want_cert, want_names), "{name}: {out:?}");
            assert!(out[0].detail.contains(text), "{name}: {:?}", out[0].detail);
            for c in &out {
                assert_eq!(c.fix.is_some(), c.status == Status::Finding, "{name}: {c:?}");
            }
        }
        let out = checks(&public, &facts(Some(&soon), false), now);
        assert!(out[1].detail.contains("does not name 10.0.0.5 "), "{:?}", out[1].detail);
        assert!(out[1].fix.as_deref().unwrap().contains("self-signed"));
        let out = checks(&public, &facts(Some(&expired), true), now);
        assert!(out[0].fix.as_deref().unwrap().contains("renew the certificate"));
    }
}
