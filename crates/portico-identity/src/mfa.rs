//! The second factor: TOTP authenticators (RFC 6238, the codes of any authenticator app) and
//! one-time recovery codes.
//!
//! - Secrets are 160 random bits, sealed at rest with the instance's secret key.
//! - A code is accepted for the previous, current or next 30-second step (clock drift), and
//!   each step only once: the store keeps the newest step used and refuses anything not newer,
//!   atomically, so a code seen over someone's shoulder cannot be replayed.
//! - Ten recovery codes of 80 random bits each, shown once, stored as SHA-256 (their entropy
//!   makes a slow hash unnecessary), each usable once.

use crate::secrets::{SecretBox, SecretError};
use crate::sessions::unix_now;
use portico_store::{Store, StoreError, UserRow};
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Secret, TOTP};

const STEP_SECONDS: i64 = 30;
const DIGITS: usize = 6;
pub const RECOVERY_CODES: usize = 10;
/// A pending enrolment older than this gets a new secret when the page is shown again.
const PENDING_LIFETIME: i64 = 15 * 60;
/// Recovery code alphabet: no 0/O or 1/I/L to misread.
const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";

#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    #[error("That code is not right. Type the 6 digits your authenticator app shows now (check that your phone's clock is set automatically), or one of your recovery codes.")]
    WrongCode,
    #[error("That code was already used. Wait for the next one (at most 30 seconds) and type it.")]
    Replayed,
    #[error("There is no authenticator being set up; start again from your account page.")]
    NothingPending,
    #[error("{0}")]
    Secret(#[from] SecretError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// What a user has set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaStatus {
    None,
    Active { recovery_codes_left: i64 },
}

/// What the enrolment page shows.
pub struct Enrolment {
    /// The secret in base32, for typing into an app by hand.
    pub secret: String,
    /// `otpauth://totp/…`, the QR code's content.
    pub url: String,
    /// The QR code as an inline SVG element.
    pub qr_svg: String,
}

/// How a second factor was proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    Totp,
    RecoveryCode { left: i64 },
}

impl Proof {
    pub fn method(&self) -> &'static str {
        match self {
            Proof::Totp => "password+totp",
            Proof::RecoveryCode { .. } => "password+recovery-code",
        }
    }
}

/// The MFA service; cheap to clone.
#[derive(Clone)]
pub struct Mfa {
    store: Store,
    secrets: SecretBox,
    issuer: String,
}

fn purpose(user_id: i64) -> String {
    format!("totp:{user_id}")
}

fn totp(secret: Vec<u8>, issuer: &str, account: &str) -> Option<TOTP> {
    TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        1,
        STEP_SECONDS as u64,
        secret,
        Some(issuer.to_owned()),
        account.to_owned(),
    )
    .ok()
}

/// SHA-256 of a recovery code as typed (spaces, dashes and case ignored).
pub fn recovery_hash(code: &str) -> String {
    let normalized: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    hex::encode(Sha256::digest(normalized.as_bytes()))
}

/// Ten new codes, `XXXX-XXXX-XXXX-XXXX` (16 symbols of 31: about 79 bits each).
fn new_recovery_codes() -> Vec<String> {
    let mut rng = rand::rng();
    (0..RECOVERY_CODES)
        .map(|_| {
            let symbols: Vec<char> = (0..16)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect();
            symbols
                .chunks(4)
                .map(|c| c.iter().collect::<String>())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// A TOTP code as typed: six digits, spaces allowed.
fn as_totp_code(input: &str) -> Option<String> {
    let digits: String = input.chars().filter(|c| !c.is_whitespace()).collect();
    (digits.len() == DIGITS && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

impl Mfa {
    /// `issuer` is what authenticator apps show above the account, e.g. `Portico (example.com)`.
    pub fn new(store: Store, secrets: SecretBox, issuer: &str) -> Mfa {
        Mfa {
            store,
            secrets,
            issuer: issuer.to_owned(),
        }
    }

    pub async fn status(&self, user_id: i64) -> Result<MfaStatus, MfaError> {
        match self.store.totp_of(user_id).await? {
            Some(row) if row.confirmed_at.is_some() => Ok(MfaStatus::Active {
                recovery_codes_left: self.store.unused_recovery_codes(user_id).await?,
            }),
            _ => Ok(MfaStatus::None),
        }
    }

    /// The enrolment to show: the pending one when recent (a reload shows the same QR code),
    /// else a new secret.
    pub async fn enrolment(&self, user: &UserRow) -> Result<Enrolment, MfaError> {
        let now = unix_now();
        let pending = match self.store.totp_of(user.id).await? {
            Some(row) if row.confirmed_at.is_none() && now - row.created_at < PENDING_LIFETIME => {
                Some(self.secrets.open(&purpose(user.id), &row.secret_sealed)?)
            }
            _ => None,
        };
        let secret = match pending {
            Some(secret) => secret,
            None => {
                let secret = Secret::generate_secret()
                    .to_bytes()
                    .expect("a generated secret is valid");
                let sealed = self.secrets.seal(&purpose(user.id), &secret);
                self.store.begin_totp(user.id, &sealed, now).await?;
                secret
            }
        };
        let totp = totp(secret, &self.issuer, &user.email).ok_or(MfaError::NothingPending)?;
        let url = totp.get_url();
        let qr_svg = qrcode::QrCode::new(url.as_bytes())
            .map(|qr| {
                qr.render::<qrcode::render::svg::Color>()
                    .min_dimensions(200, 200)
                    .quiet_zone(true)
                    .build()
            })
            .unwrap_or_default();
        // Inline in HTML: drop the XML declaration the renderer puts first.
        let qr_svg = match qr_svg.find("<svg") {
            Some(start) => qr_svg[start..].to_owned(),
            None => qr_svg,
        };
        Ok(Enrolment {
            secret: totp.get_secret_base32(),
            url,
            qr_svg,
        })
    }

    /// Finishes enrolment with a code from the app; returns the recovery codes to show once.
    pub async fn confirm(&self, user: &UserRow, code: &str) -> Result<Vec<String>, MfaError> {
        let row = self
            .store
            .totp_of(user.id)
            .await?
            .filter(|row| row.confirmed_at.is_none())
            .ok_or(MfaError::NothingPending)?;
        let secret = self.secrets.open(&purpose(user.id), &row.secret_sealed)?;
        let step = self
            .matching_step(secret, &user.email, code)
            .ok_or(MfaError::WrongCode)?;
        let codes = new_recovery_codes();
        let hashes: Vec<String> = codes.iter().map(|c| recovery_hash(c)).collect();
        if !self
            .store
            .confirm_totp(user.id, step, unix_now(), &hashes)
            .await?
        {
            return Err(MfaError::NothingPending);
        }
        self.store
            .add_audit(&user.email, "mfa.enrol", Some(&user.email), "totp")
            .await?;
        Ok(codes)
    }

    /// Checks a second factor at sign-in: a TOTP code or a recovery code.
    pub async fn verify(&self, user: &UserRow, input: &str) -> Result<Proof, MfaError> {
        let row = self
            .store
            .totp_of(user.id)
            .await?
            .filter(|row| row.confirmed_at.is_some())
            .ok_or(MfaError::NothingPending)?;
        if let Some(code) = as_totp_code(input) {
            let secret = self.secrets.open(&purpose(user.id), &row.secret_sealed)?;
            let step = self
                .matching_step(secret, &user.email, &code)
                .ok_or(MfaError::WrongCode)?;
            return if self.store.accept_totp_step(user.id, step).await? {
                Ok(Proof::Totp)
            } else {
                Err(MfaError::Replayed)
            };
        }
        if input.len() > 64 {
            return Err(MfaError::WrongCode);
        }
        let hash = recovery_hash(input);
        if self
            .store
            .use_recovery_code(user.id, &hash, unix_now())
            .await?
        {
            let left = self.store.unused_recovery_codes(user.id).await?;
            self.store
                .add_audit(
                    &user.email,
                    "mfa.recovery-code-used",
                    Some(&user.email),
                    &format!("{left} left"),
                )
                .await?;
            Ok(Proof::RecoveryCode { left })
        } else {
            Err(MfaError::WrongCode)
        }
    }

    /// New recovery codes for a user with an authenticator; the old ones stop working.
    pub async fn replace_recovery_codes(&self, user: &UserRow) -> Result<Vec<String>, MfaError> {
        if self.status(user.id).await? == MfaStatus::None {
            return Err(MfaError::NothingPending);
        }
        let codes = new_recovery_codes();
        let hashes: Vec<String> = codes.iter().map(|c| recovery_hash(c)).collect();
        self.store.replace_recovery_codes(user.id, &hashes).await?;
        self.store
            .add_audit(
                &user.email,
                "mfa.recovery-codes-replaced",
                Some(&user.email),
                "",
            )
            .await?;
        Ok(codes)
    }

    /// Removes a user's authenticator and recovery codes (`actor` did it); `false` when they had
    /// none.
    pub async fn remove(&self, actor: &str, user: &UserRow) -> Result<bool, MfaError> {
        let removed = self.store.delete_totp(user.id).await?;
        if removed {
            self.store
                .add_audit(actor, "mfa.remove", Some(&user.email), "")
                .await?;
        }
        Ok(removed)
    }

    /// The time step whose code is `code`, among the previous, current and next, compared in
    /// constant time.
    fn matching_step(&self, secret: Vec<u8>, account: &str, code: &str) -> Option<i64> {
        let code = as_totp_code(code)?;
        let totp = totp(secret, &self.issuer, account)?;
        let current = unix_now() / STEP_SECONDS;
        (current - 1..=current + 1).find(|step| {
            let expected = totp.generate((step * STEP_SECONDS) as u64);
            bool::from(expected.as_bytes().ct_eq(code.as_bytes()))
        })
    }
}

/// The code an authenticator app shows now for a base32 secret: for tests and for the
/// `portico` test harness, which plays the part of a phone.
pub fn current_code(secret_base32: &str) -> Option<String> {
    let secret = Secret::Encoded(secret_base32.to_owned()).to_bytes().ok()?;
    let totp = TOTP::new_unchecked(
        Algorithm::SHA1,
        DIGITS,
        1,
        STEP_SECONDS as u64,
        secret,
        None,
        String::new(),
    );
    Some(totp.generate((unix_now()) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn setup() -> (tempfile::TempDir, Mfa, UserRow) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        store
            .insert_user("ann@example.com", "Ann", None, false)
            .await
            .unwrap();
        let user = store
            .user_by_email("ann@example.com")
            .await
            .unwrap()
            .unwrap();
        let mfa = Mfa::new(store, SecretBox::from_key([1; 32]), "Portico (test)");
        (dir, mfa, user)
    }

    #[tokio::test]
    async fn enrolment_confirms_with_a_code_and_each_code_works_once() {
        let (_dir, mfa, user) = setup().await;
        let enrolment = mfa.enrolment(&user).await.unwrap();
        assert!(enrolment.qr_svg.starts_with("<svg"));
        assert!(enrolment.url.starts_with("otpauth://totp/"));
        let again = mfa.enrolment(&user).await.unwrap();
        assert_eq!(
            again.secret, enrolment.secret,
            "a reload shows the same secret"
        );
        assert!(matches!(
            mfa.confirm(&user, "000000x").await,
            Err(MfaError::WrongCode)
        ));
        let code = current_code(&enrolment.secret).unwrap();
        let recovery = mfa.confirm(&user, &code).await.unwrap();
        assert_eq!(recovery.len(), RECOVERY_CODES);
        // The code that confirmed enrolment cannot then sign in.
        assert!(matches!(
            mfa.verify(&user, &code).await,
            Err(MfaError::Replayed)
        ));
        assert_eq!(
            mfa.status(user.id).await.unwrap(),
            MfaStatus::Active {
                recovery_codes_left: 10
            }
        );
        // A recovery code works once, typed in any case and without dashes.
        let typed = recovery[3].replace('-', "").to_lowercase();
        assert_eq!(
            mfa.verify(&user, &typed).await.unwrap(),
            Proof::RecoveryCode { left: 9 }
        );
        assert!(matches!(
            mfa.verify(&user, &recovery[3]).await,
            Err(MfaError::WrongCode)
        ));
        assert!(matches!(
            mfa.verify(&user, &"9".repeat(5000)).await,
            Err(MfaError::WrongCode)
        ));
        assert!(mfa.remove("admin@example.com", &user).await.unwrap());
        assert_eq!(mfa.status(user.id).await.unwrap(), MfaStatus::None);
    }
}
