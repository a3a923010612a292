//! Who may log in to the node's session server: holders of a user certificate from the
//! gateway's CA whose principals name the login.

use russh::keys::Certificate;
use russh::keys::ssh_key::PublicKey;
use russh::keys::ssh_key::certificate::CertType;

/// Why a certificate is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Signed by another CA.
    #[error("certificate not signed by the gateway's user CA")]
    OtherCa,
    /// A host certificate.
    #[error("not a user certificate")]
    NotUser,
    /// It carries critical options (force-command, source-address, ...) this server does not enforce.
    #[error("certificate has critical options")]
    CriticalOptions,
    /// The login is not among its principals.
    #[error("login not among the certificate's principals")]
    Principal,
}

/// Decides a certificate russh has already checked (signature by the key inside it, validity
/// window): trust is ours. Accepts iff signed by `user_ca`, of type user, without critical
/// options, and `login` is one of its principals (an empty list allows nobody).
pub fn check_certificate(user_ca: &PublicKey, cert: &Certificate, login: &str) -> Result<(), Refusal> {
    if cert.signature_key() != user_ca.key_data() {
        return Err(Refusal::OtherCa);
    }
    if cert.cert_type() != CertType::User {
        return Err(Refusal::NotUser);
    }
    if !cert.critical_options().is_empty() {
        return Err(Refusal::CriticalOptions);
    }
    if !cert.valid_principals().iter().any(|p| p == login) {
        return Err(Refusal::Principal);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use russh::keys::ssh_key::certificate::Builder;
    use russh::keys::ssh_key::{Algorithm, PrivateKey};

    use super::*;

    fn key() -> PrivateKey {
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap()
    }

    fn cert(ca: &PrivateKey, kind: CertType, principals: &[&str], critical: &[(&str, &str)]) -> Certificate {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let mut builder = Builder::new_with_random_nonce(
            &mut rand::rng(),
            key().public_key().key_data().clone(),
            now - 60,
            now + 300,
        )
        .unwrap();
        builder.cert_type(kind).unwrap().key_id("portcullis:alice@gpu-01").unwrap().serial(7).unwrap();
        for principal in principals {
            builder.valid_principal(*principal).unwrap();
        }
        if principals.is_empty() {
            builder.all_principals_valid().unwrap();
        }
        for (name, value) in critical {
            builder.critical_option(*name, *value).unwrap();
        }
        builder.extension("permit-pty", "").unwrap();
        builder.sign(ca).unwrap()
    }

    #[test]
    fn our_user_certificate_for_the_login_is_accepted() {
        let ca = key();
        let cert = cert(&ca, CertType::User, &["vendor", "ubuntu"], &[]);
        assert_eq!(check_certificate(ca.public_key(), &cert, "ubuntu"), Ok(()));
        assert_eq!(check_certificate(ca.public_key(), &cert, "vendor"), Ok(()));
    }

    #[test]
    fn another_login_is_refused() {
        let ca = key();
        let cert = cert(&ca, CertType::User, &["vendor"], &[]);
        assert_eq!(check_certificate(ca.public_key(), &cert, "root"), Err(Refusal::Principal));
        assert_eq!(check_certificate(ca.public_key(), &cert, "vendor "), Err(Refusal::Principal));
        assert_eq!(check_certificate(ca.public_key(), &cert, ""), Err(Refusal::Principal));
    }

    #[test]
    fn a_certificate_without_principals_allows_nobody() {
        let ca = key();
        let cert = cert(&ca, CertType::User, &[], &[]);
        assert_eq!(check_certificate(ca.public_key(), &cert, "root"), Err(Refusal::Principal));
    }

    #[test]
    fn another_ca_is_refused() {
        let (ca, other) = (key(), key());
        let cert = cert(&other, CertType::User, &["vendor"], &[]);
        assert_eq!(check_certificate(ca.public_key(), &cert, "vendor"), Err(Refusal::OtherCa));
    }

    #[test]
    fn host_certificates_are_refused() {
        let ca = key();
        let cert = cert(&ca, CertType::Host, &["vendor"], &[]);
        assert_eq!(check_certificate(ca.public_key(), &cert, "vendor"), Err(Refusal::NotUser));
    }

    #[test]
    fn critical_options_are_refused() {
        let ca = key();
        let cert = cert(&ca, CertType::User, &["vendor"], &[("force-command", "/bin/true")]);
        assert_eq!(check_certificate(ca.public_key(), &cert, "vendor"), Err(Refusal::CriticalOptions));
    }
}
