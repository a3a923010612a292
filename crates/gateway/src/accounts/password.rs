//! Password hashing: argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane), stored
//! as PHC strings. Blocking; call through [`super::Accounts`].

use std::sync::OnceLock;

use anyhow::anyhow;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

/// Shortest password accepted.
pub const MIN_LEN: usize = 12;
/// Longest password accepted (in bytes), so hashing time stays bounded.
pub const MAX_LEN: usize = 1024;

fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP argon2id parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Why a new password is refused, in words for the user.
pub fn check_policy(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_LEN {
        return Err(format!("the password must have at least {MIN_LEN} characters"));
    }
    if password.len() > MAX_LEN {
        return Err(format!("the password must have at most {MAX_LEN} bytes"));
    }
    Ok(())
}

/// Hashes a password with a fresh random salt.
pub fn hash(password: &str) -> anyhow::Result<String> {
    let salt: [u8; 16] = rand::random();
    let hash = hasher().hash_password_with_salt(password.as_bytes(), &salt).map_err(|e| anyhow!("argon2: {e}"))?;
    Ok(hash.to_string())
}

/// Whether `password` matches `hash`; with no hash (or a corrupt one) the same work is
/// done against a dummy hash and the answer is false.
pub fn verify(password: &str, hash: Option<&str>) -> bool {
    let candidate = password.as_bytes().get(..MAX_LEN).unwrap_or(password.as_bytes());
    match hash {
        Some(hash) if hasher().verify_password(candidate, hash).is_ok() => true,
        Some(hash) if argon2::PasswordHash::new(hash).is_ok() => false,
        _ => {
            let _ = hasher().verify_password(candidate, dummy());
            false
        }
    }
}

/// A hash of nothing anyone knows, with the same parameters, for unknown users.
fn dummy() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let unguessable = hex::encode(rand::random::<[u8; 32]>());
        hash(&unguessable).expect("hashing a fixed-length password works")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_use_argon2id_with_owasp_parameters() {
        let stored = hash("correct horse battery").unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
        assert!(verify("correct horse battery", Some(&stored)));
        assert!(!verify("correct horse batterY", Some(&stored)));
        assert!(!verify("", Some(&stored)));
        assert!(!verify("anything", None));
        assert!(!verify("anything", Some("not a phc string")));
        assert_ne!(hash("same").unwrap(), hash("same").unwrap(), "salted");
    }

    #[test]
    fn policy_wants_length() {
        assert!(check_policy("short").is_err());
        assert!(check_policy("twelve chars").is_ok());
        assert!(check_policy(&"x".repeat(MAX_LEN + 1)).is_err());
    }
}
