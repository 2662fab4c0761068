//! Enrollment tokens and agent credentials: generation and the hash the store keeps.
//!
//! Both are 32 random bytes from the OS (ring's `SystemRandom`), hex-encoded behind a recognisable
//! prefix. The store keeps only their SHA-256: for a 256-bit random secret a fast hash is right (no
//! dictionary to attack); passwords, when they come, get a memory-hard hash instead. A secret is
//! never logged: [`Secret`] has a redacting `Debug` and no `Display`.

use std::fmt;

use callhome_shared::api::{AGENT_CREDENTIAL_PREFIX, ENROLLMENT_TOKEN_PREFIX, TAM_TOKEN_PREFIX};
use ring::rand::{SecureRandom, SystemRandom};

const SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomError;

/// A freshly made token or credential, shown once to whoever asked for it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that hands it out.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> String {
        hash_secret(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = self.0.split_inclusive('_').next().unwrap_or_default();
        write!(f, "Secret({prefix}…)")
    }
}

pub fn new_enrollment_token() -> Result<Secret, RandomError> {
    new_secret(ENROLLMENT_TOKEN_PREFIX)
}

pub fn new_agent_credential() -> Result<Secret, RandomError> {
    new_secret(AGENT_CREDENTIAL_PREFIX)
}

pub fn new_tam_token() -> Result<Secret, RandomError> {
    new_secret(TAM_TOKEN_PREFIX)
}

/// A console session's cookie value (and, with another call, its CSRF token).
pub fn new_session_token() -> Result<Secret, RandomError> {
    new_secret("chs_")
}

fn new_secret(prefix: &str) -> Result<Secret, RandomError> {
    Ok(Secret(format!("{prefix}{}", random_hex(SECRET_BYTES)?)))
}

/// `n` random bytes as lowercase hex; also used for short public ids.
pub fn random_hex(n: usize) -> Result<String, RandomError> {
    let mut bytes = vec![0u8; n];
    SystemRandom::new().fill(&mut bytes).map_err(|_| RandomError)?;
    Ok(hex::encode(bytes))
}

/// SHA-256 of the secret as lowercase hex: what the store keeps and looks up by.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, secret.as_bytes()))
}

/// Whether `s` has the shape of a secret made with `prefix` (cheap check before a lookup).
pub fn has_shape(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == SECRET_BYTES * 2 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_and_credential_have_prefix_and_64_hex_chars() {
        let t = new_enrollment_token().unwrap();
        let c = new_agent_credential().unwrap();
        assert!(t.expose().starts_with("chet_"));
        assert!(c.expose().starts_with("chac_"));
        for (s, prefix) in [(&t, "chet_"), (&c, "chac_")] {
            let rest = &s.expose()[prefix.len()..];
            assert_eq!(rest.len(), 64);
            assert!(
                rest.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            );
            assert!(has_shape(s.expose(), prefix));
        }
        assert!(!has_shape(t.expose(), "chac_"));
        assert_ne!(new_enrollment_token().unwrap(), t);
    }

    #[test]
    fn hash_is_sha256_hex() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let t = new_enrollment_token().unwrap();
        assert_eq!(t.hash(), hash_secret(t.expose()));
        assert_eq!(t.hash().len(), 64);
    }

    #[test]
    fn debug_does_not_leak_the_secret() {
        let t = new_enrollment_token().unwrap();
        let shown = format!("{t:?}");
        assert!(!shown.contains(&t.expose()[5..]), "{shown}");
        assert!(shown.contains("chet_"));
    }
}
