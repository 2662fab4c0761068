//! TAM and admin passwords: Argon2id in PHC string format (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
//!
//! Parameters: m = 19 MiB, t = 2, p = 1, OWASP's recommended minimum for Argon2id (Password Storage
//! Cheat Sheet). Stronger settings cost every sign-in more memory and time on a collector that also
//! ingests snapshots; these already make an offline guess cost ~19 MiB of memory traffic, which is what
//! defeats GPU and ASIC crackers. The parameters live in each stored hash, so raising them later only
//! changes new hashes; old ones keep verifying.
//!
//! Hashing is CPU- and memory-heavy: async callers run it on the blocking pool (`store::accounts`).
//! A verification compares in constant time (the `phc` crate's `Output` equality), and an unknown
//! login is verified against a dummy hash made with the same parameters, so the answer takes as long
//! whether or not the login exists.

use std::fmt;
use std::sync::{Arc, OnceLock};

use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use ring::rand::{SecureRandom, SystemRandom};

/// Shorter passwords are refused (NIST SP 800-63B asks for at least 8; 12 leaves a margin).
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longer ones too: Argon2 takes any length, but a megabyte "password" is a denial of service.
pub const MAX_PASSWORD_BYTES: usize = 1024;
const SALT_BYTES: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("the password must have at most {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    #[error("the operating system's random number generator failed")]
    Random,
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// A password hash as stored: a PHC string. Only [`Hasher::hash`] makes one, so the store can never
/// be handed a plain password by mistake.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(…)")
    }
}

/// Hashes and verifies passwords with fixed Argon2id parameters. Cheap to clone.
#[derive(Clone)]
pub struct Hasher {
    params: Params,
    /// A hash of a random password with `params`, verified in place of an unknown login's.
    dummy: Arc<OnceLock<String>>,
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher")
            .field("m_cost_kib", &self.params.m_cost())
            .field("t_cost", &self.params.t_cost())
            .field("p_cost", &self.params.p_cost())
            .finish()
    }
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher::new()
    }
}

impl Hasher {
    /// The production parameters (see the module note).
    pub fn new() -> Hasher {
        Hasher::with_params(Params::DEFAULT)
    }

    /// Minimal parameters (8 KiB, one pass): for unit tests only, where hundreds of hashes would
    /// otherwise take minutes. Never use it for a real store.
    #[cfg(test)]
    pub fn insecure_for_tests() -> Hasher {
        match Params::new(8, 1, 1, None) {
            Ok(params) => Hasher::with_params(params),
            Err(_) => Hasher::new(),
        }
    }

    fn with_params(params: Params) -> Hasher {
        Hasher {
            params,
            dummy: Arc::new(OnceLock::new()),
        }
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Checks the password policy and hashes with a fresh random salt.
    pub fn hash(&self, password: &str) -> Result<PasswordHash, PasswordError> {
        check_policy(password)?;
        self.hash_unchecked(password).map(PasswordHash)
    }

    fn hash_unchecked(&self, password: &str) -> Result<String, PasswordError> {
        let mut salt = [0u8; SALT_BYTES];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| PasswordError::Random)?;
        let hash = self
            .argon2()
            .hash_password_with_salt(password.as_bytes(), &salt)
            .map_err(|e| PasswordError::Hash(e.to_string()))?;
        Ok(hash.to_string())
    }

    /// Whether `password` matches `stored` (a PHC string). A malformed stored hash never matches.
    pub fn verify(&self, password: &str, stored: &str) -> bool {
        if password.len() > MAX_PASSWORD_BYTES {
            // Still spend the time, so a long guess is not a timing oracle either.
            self.verify_dummy();
            return false;
        }
        let Ok(parsed) = argon2::PasswordHash::new(stored) else {
            tracing::error!("a stored password hash is not a valid PHC string");
            return false;
        };
        self.argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    }

    /// Spends the time of one verification, for a login that does not exist or cannot sign in.
    pub fn verify_dummy(&self) {
        let dummy = self.dummy.get_or_init(|| {
            let random = crate::secret::random_hex(16).unwrap_or_else(|_| "dummy-password-x".to_owned());
            self.hash_unchecked(&random).unwrap_or_default()
        });
        if let Ok(parsed) = argon2::PasswordHash::new(dummy) {
            let _ = self.argon2().verify_password(b"not the password", &parsed);
        }
    }
}

/// The policy: length only (NIST SP 800-63B: no composition rules), counted in characters.
pub fn check_policy(password: &str) -> Result<(), PasswordError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    Ok(())
}

/// A strong random password for `user add --generate-password`: 20 characters from a 56-symbol
/// alphabet without look-alikes (~116 bits).
pub fn generate() -> Result<String, PasswordError> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let rng = SystemRandom::new();
    let mut out = String::with_capacity(20);
    while out.len() < 20 {
        let mut byte = [0u8; 1];
        rng.fill(&mut byte).map_err(|_| PasswordError::Random)?;
        // Rejection sampling: only bytes below the largest multiple of the alphabet's size, so
        // every symbol is equally likely.
        let limit = 256 - 256 % ALPHABET.len();
        if usize::from(byte[0]) < limit {
            out.push(char::from(ALPHABET[usize::from(byte[0]) % ALPHABET.len()]));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_parameters_are_owasp_argon2id() {
        let h = Hasher::new();
        assert_eq!(h.params.m_cost(), 19 * 1024);
        assert_eq!(h.params.t_cost(), 2);
        assert_eq!(h.params.p_cost(), 1);
        let hash = h.hash("correct horse battery").unwrap();
        assert!(
            hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            hash.as_str()
        );
        assert!(h.verify("correct horse battery", hash.as_str()));
        assert!(!h.verify("correct horse batterx", hash.as_str()));
    }

    #[test]
    fn hash_and_verify() {
        let h = Hasher::insecure_for_tests();
        let a = h.hash("a long enough password").unwrap();
        let b = h.hash("a long enough password").unwrap();
        assert_ne!(a, b, "a fresh salt each time");
        assert!(h.verify("a long enough password", a.as_str()));
        assert!(h.verify("a long enough password", b.as_str()));
        assert!(!h.verify("a long enough passworD", a.as_str()));
        assert!(!h.verify("", a.as_str()));
        assert!(!h.verify("a long enough password", "not a phc string"));
        assert!(!h.verify("a long enough password", ""));
        // A hash made with other parameters verifies with its own (they are in the string).
        assert!(Hasher::new().verify("a long enough password", a.as_str()));
        assert!(!format!("{a:?}").contains("argon2"));
    }

    #[test]
    fn policy_counts_characters_and_bounds_bytes() {
        let h = Hasher::insecure_for_tests();
        assert!(matches!(h.hash("elevenchars"), Err(PasswordError::TooShort)));
        assert!(h.hash("twelve chars").is_ok());
        // 12 characters, 24 bytes: long enough.
        assert!(h.hash("éééééééééééé").is_ok());
        assert!(matches!(h.hash(&"x".repeat(2000)), Err(PasswordError::TooLong)));
        let long = "y".repeat(2000);
        let stored = h.hash("twelve chars").unwrap();
        assert!(!h.verify(&long, stored.as_str()));
    }

    #[test]
    fn dummy_verification_runs() {
        let h = Hasher::insecure_for_tests();
        h.verify_dummy();
        h.verify_dummy();
        assert!(h.dummy.get().is_some_and(|d| d.starts_with("$argon2id$")));
    }

    #[test]
    fn generated_passwords_pass_the_policy_and_differ() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_eq!(a.chars().count(), 20);
        assert!(check_policy(&a).is_ok());
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
    }
}
