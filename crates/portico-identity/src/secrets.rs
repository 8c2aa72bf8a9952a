//! The instance's secret key, which seals secrets that Portico must read back (TOTP secrets):
//! XChaCha20-Poly1305 with a random nonce per value and the value's purpose as associated data,
//! so a sealed value copied to another row or another purpose does not open.
//!
//! The key is `PORTICO_SECRET_KEY` (64 hex digits) when set, as on Kubernetes where it comes
//! from a Secret; otherwise `secret.key` in the data folder, made on first use with mode 0600.
//! A database backup without the key reveals no second factor. Losing the key means every
//! user must enrol their authenticator again (admins can reset MFA).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Sealed values start with this byte, so that a future key or cipher can be told apart.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
pub const KEY_ENV: &str = "PORTICO_SECRET_KEY";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "{KEY_ENV} must be 64 hexadecimal digits (32 bytes); make one with `openssl rand -hex 32`"
    )]
    BadEnvKey,
    #[error("the secret key file {} is not 64 hexadecimal digits; restore it from a backup, or delete it to make a new one (users then enrol MFA again)", .0.display())]
    BadKeyFile(PathBuf),
    #[error("cannot read or create the secret key file {}: {source}", path.display())]
    KeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "a stored secret does not open with this instance's secret key (was the key changed?)"
    )]
    Unseal,
}

/// Seals and opens secrets; cheap to clone.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
    /// SHA-256 of the key: the root of [`SecretBox::subkey`], so the key itself is kept only
    /// inside the cipher.
    root: [u8; 32],
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(…)")
    }
}

fn parse_key(text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(text.trim()).ok()?;
    bytes.try_into().ok()
}

impl SecretBox {
    pub fn from_key(key: [u8; 32]) -> SecretBox {
        use sha2::Digest;
        SecretBox {
            cipher: XChaCha20Poly1305::new(&key.into()),
            root: sha2::Sha256::digest(key).into(),
        }
    }

    /// A key for another purpose (e.g. signing routing cookies), derived from this one, so it
    /// survives restarts and is rotated with it: SHA-256(root ‖ purpose).
    pub fn subkey(&self, purpose: &str) -> [u8; 32] {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        hasher.update(self.root);
        hasher.update(purpose.as_bytes());
        hasher.finalize().into()
    }

    /// The key from `PORTICO_SECRET_KEY`, else from (or newly made in) `data_dir/secret.key`.
    pub fn for_data_dir(data_dir: &Path) -> Result<SecretBox, SecretError> {
        if let Ok(text) = std::env::var(KEY_ENV) {
            return parse_key(&text)
                .map(SecretBox::from_key)
                .ok_or(SecretError::BadEnvKey);
        }
        let path = data_dir.join("secret.key");
        let io = |source| SecretError::KeyFile {
            path: path.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => parse_key(&text)
                .map(SecretBox::from_key)
                .ok_or_else(|| SecretError::BadKeyFile(path.clone())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                write_new_key(&path, &key).map_err(io)?;
                // Another process may have won the race to create it: read what is there.
                let text = std::fs::read_to_string(&path).map_err(io)?;
                parse_key(&text)
                    .map(SecretBox::from_key)
                    .ok_or_else(|| SecretError::BadKeyFile(path.clone()))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Seals `plain` for `purpose` (e.g. `totp:42`).
    pub fn seal(&self, purpose: &str, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: purpose.as_bytes(),
                },
            )
            .expect("encryption of an in-memory value cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens what `seal` made for the same `purpose`.
    pub fn open(&self, purpose: &str, sealed: &[u8]) -> Result<Vec<u8>, SecretError> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != VERSION {
            return Err(SecretError::Unseal);
        }
        let (nonce, body) = sealed[1..].split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: purpose.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Unseal)
    }
}

/// Creates the key file only if absent, readable by the owner alone.
fn write_new_key(path: &Path, key: &[u8; 32]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match file {
        Ok(mut file) => {
            writeln!(file, "{}", hex::encode(key))?;
            file.sync_all()
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_for_their_purpose_and_key() {
        let a = SecretBox::from_key([7; 32]);
        let sealed = a.seal("totp:1", b"secret");
        assert_eq!(a.open("totp:1", &sealed).unwrap(), b"secret");
        assert!(a.open("totp:2", &sealed).is_err(), "moved to another row");
        assert!(SecretBox::from_key([8; 32])
            .open("totp:1", &sealed)
            .is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(a.open("totp:1", &tampered).is_err());
        assert!(
            a.open("totp:1", &[]).is_err(),
            "short input is an error, not a panic"
        );
    }

    #[test]
    fn the_key_file_is_made_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = SecretBox::for_data_dir(dir.path()).unwrap();
        let sealed = first.seal("x", b"y");
        let again = SecretBox::for_data_dir(dir.path()).unwrap();
        assert_eq!(again.open("x", &sealed).unwrap(), b"y");
        let mode = std::fs::metadata(dir.path().join("secret.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(dir.path().join("secret.key"), "nonsense").unwrap();
        let error = SecretBox::for_data_dir(dir.path()).unwrap_err().to_string();
        assert!(error.contains("not 64 hexadecimal digits"), "{error}");
    }
}
