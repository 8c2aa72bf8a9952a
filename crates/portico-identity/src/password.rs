//! Passwords: argon2id hashes in PHC format, a policy that refuses weak ones, and generated
//! ones for bootstrap and resets.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::Rng;

/// Shorter passwords are refused (NIST SP 800-63B asks for at least 8; we ask for more).
pub const MIN_LENGTH: usize = 12;
/// Longer ones too: hashing megabytes on request is a denial of service.
pub const MAX_LENGTH: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordProblem {
    #[error("the password is too short: use at least {MIN_LENGTH} characters (a few words make a good one)")]
    TooShort,
    #[error("the password is too long: use at most {MAX_LENGTH} characters")]
    TooLong,
    #[error("the password is one of the most common passwords; choose another")]
    Common,
    #[error("the password contains the e-mail address; choose another")]
    ContainsEmail,
}

/// OWASP's recommended argon2id settings: 19 MiB, 2 passes, 1 lane.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Checks a new password against the policy.
pub fn check_policy(password: &str, email: &str) -> Result<(), PasswordProblem> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err(PasswordProblem::TooShort);
    }
    if length > MAX_LENGTH {
        return Err(PasswordProblem::TooLong);
    }
    let lower = password.to_lowercase();
    if crate::common_passwords::is_common(&lower) {
        return Err(PasswordProblem::Common);
    }
    let local = email.split('@').next().unwrap_or("");
    if lower.contains(&email.to_lowercase())
        || (local.len() >= 4 && lower.contains(&local.to_lowercase()))
    {
        return Err(PasswordProblem::ContainsEmail);
    }
    Ok(())
}

/// The argon2id PHC string for a password.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashing with valid parameters")
        .to_string()
}

/// Whether `password` matches `hash`. The comparison inside argon2 is constant-time. A hash
/// that cannot be parsed never matches.
pub fn verify_password(hash: &str, password: &str) -> bool {
    if password.len() > MAX_LENGTH * 4 {
        return false;
    }
    PasswordHash::new(hash)
        .map(|parsed| {
            hasher()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A random password of 20 characters from an alphabet without look-alikes (no 0/O, 1/l/I):
/// about 115 bits, typed without confusion from a terminal.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hash = hash_password("correct horse battery staple");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password(&hash, "correct horse battery staple"));
        assert!(!verify_password(&hash, "correct horse battery stapler"));
        assert!(!verify_password("not a hash", "anything"));
        assert_ne!(
            hash,
            hash_password("correct horse battery staple"),
            "salted"
        );
    }

    #[test]
    fn the_policy_refuses_short_long_common_and_email_passwords() {
        let email = "ada@example.com";
        assert_eq!(check_policy("short", email), Err(PasswordProblem::TooShort));
        assert_eq!(
            check_policy(&"x".repeat(MAX_LENGTH + 1), email),
            Err(PasswordProblem::TooLong)
        );
        assert_eq!(
            check_policy("Password1234", email),
            Err(PasswordProblem::Common)
        );
        assert_eq!(
            check_policy("qwertyuiop123", email),
            Err(PasswordProblem::Common)
        );
        assert_eq!(
            check_policy("ada@example.com!", email),
            Err(PasswordProblem::ContainsEmail)
        );
        assert_eq!(check_policy("annual-report-velvet-7", email), Ok(()));
    }

    #[test]
    fn generated_passwords_pass_the_policy_and_differ() {
        let a = generate_password();
        assert_eq!(a.len(), 20);
        assert_eq!(check_policy(&a, "admin@localhost"), Ok(()));
        assert_ne!(a, generate_password());
    }
}
