//! `X-Portico-Assertion`: a short-lived ES256 JWT that tells a dashboard who is signed in, in a
//! form it can verify with the public keys at `/.well-known/portico/jwks.json` instead of
//! trusting a header (useful when something else sits between Portico and the dashboard).
//!
//! Claims: `iss` (the portal URL), `aud` (the app's name), `sub` and `email` (the e-mail
//! address), `name`, `groups`, `iat`, `exp` (5 minutes later). The key is made at first start
//! and kept in the store; `rotate` adds a new one, the newest signs, and the previous one stays
//! in the JWKS so that assertions already issued still verify.
//!
//! Signing one costs about half a millisecond (measured with `cargo bench -p portico-identity`,
//! docs/benchmarks.md), so an assertion is reused for the same user and app for up to a minute
//! (it then still has four minutes to live); a cached one costs about 100 ns.

use crate::secrets::SecretBox;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::ecdsa::SigningKey;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use portico_core::User;
use portico_store::{SigningKeyRow, Store, StoreError};
use rand::RngCore;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;

/// How long an assertion is valid.
pub const LIFETIME_SECS: i64 = 300;
/// How long one is reused before a fresh one is signed.
const REUSE_SECS: i64 = 60;
/// Keys published in the JWKS: the signing one and the one before it.
const KEYS_KEPT: i64 = 2;
const CACHE_LIMIT: usize = 50_000;

#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the signing key in the database cannot be read: {0}")]
    Key(String),
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    email: &'a str,
    name: &'a str,
    groups: &'a [String],
    iat: i64,
    exp: i64,
}

pub struct AssertionSigner {
    issuer: String,
    kid: String,
    key: EncodingKey,
    jwks: String,
    cache: Mutex<HashMap<(i64, String), (i64, Bytes)>>,
}

fn new_key_row() -> SigningKeyRow {
    let mut seed = [0u8; 32];
    let signing = loop {
        rand::rng().fill_bytes(&mut seed);
        if let Ok(key) = SigningKey::from_bytes(&seed.into()) {
            break key;
        }
    };
    let der = signing
        .to_pkcs8_der()
        .expect("a P-256 key encodes as PKCS#8");
    let mut kid = [0u8; 8];
    rand::rng().fill_bytes(&mut kid);
    SigningKeyRow {
        kid: hex::encode(kid),
        private_der: der.as_bytes().to_vec(),
        created_at: crate::sessions::unix_now(),
    }
}

fn jwk(row: &SigningKeyRow) -> Result<serde_json::Value, AssertionError> {
    let key = SigningKey::from_pkcs8_der(&row.private_der)
        .map_err(|e| AssertionError::Key(e.to_string()))?;
    let point = key.verifying_key().to_encoded_point(false);
    let (x, y) = (
        point
            .x()
            .ok_or_else(|| AssertionError::Key("no x".into()))?,
        point
            .y()
            .ok_or_else(|| AssertionError::Key("no y".into()))?,
    );
    Ok(serde_json::json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": row.kid,
        "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
    }))
}

fn purpose(kid: &str) -> String {
    format!("signing-key:{kid}")
}

/// Adds a new signing key, sealed with the instance's secret key (the next start signs with
/// it).
pub async fn rotate(store: &Store, secrets: &SecretBox) -> Result<String, AssertionError> {
    let mut row = new_key_row();
    row.private_der = secrets.seal(&purpose(&row.kid), &row.private_der);
    store.add_signing_key(&row, KEYS_KEPT).await?;
    Ok(row.kid)
}

/// The keys in clear. A key stored in clear by a version before sealing (PKCS#8 DER starts
/// with a SEQUENCE tag, 0x30; sealed values with a version byte, 0x01) is sealed now.
async fn open_keys(
    store: &Store,
    secrets: &SecretBox,
    rows: Vec<SigningKeyRow>,
) -> Result<Vec<SigningKeyRow>, AssertionError> {
    let mut opened = Vec::with_capacity(rows.len());
    for mut row in rows {
        if row.private_der.first() == Some(&0x30) {
            let sealed = secrets.seal(&purpose(&row.kid), &row.private_der);
            store.replace_signing_key_bytes(&row.kid, &sealed).await?;
        } else {
            row.private_der = secrets
                .open(&purpose(&row.kid), &row.private_der)
                .map_err(|e| AssertionError::Key(e.to_string()))?;
        }
        opened.push(row);
    }
    Ok(opened)
}

impl AssertionSigner {
    /// Loads the keys, making the first one on the first start.
    pub async fn load(
        store: &Store,
        secrets: &SecretBox,
        issuer: &str,
    ) -> Result<AssertionSigner, AssertionError> {
        if store.signing_keys().await?.is_empty() {
            rotate(store, secrets).await?;
        }
        let keys = open_keys(store, secrets, store.signing_keys().await?).await?;
        let newest = keys
            .first()
            .ok_or_else(|| AssertionError::Key("no signing key".into()))?;
        let key = EncodingKey::from_ec_der(&newest.private_der);
        let published: Result<Vec<_>, _> = keys.iter().map(jwk).collect();
        let jwks = serde_json::json!({ "keys": published? }).to_string();
        Ok(AssertionSigner {
            issuer: issuer.to_owned(),
            kid: newest.kid.clone(),
            key,
            jwks,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The JWKS document.
    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    /// An assertion of `user` for `app`, reused for up to a minute.
    /// Shared bytes, so that putting it in a header copies nothing.
    pub fn assertion(&self, user: &User, app: &str) -> Option<Bytes> {
        let now = crate::sessions::unix_now();
        let key = (user.id, app.to_owned());
        if let Some((iat, token)) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            if now - iat < REUSE_SECS {
                return Some(token.clone());
            }
        }
        let claims = Claims {
            iss: &self.issuer,
            aud: app,
            sub: &user.email,
            email: &user.email,
            name: &user.display_name,
            groups: &user.groups,
            iat: now,
            exp: now + LIFETIME_SECS,
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let token = match jsonwebtoken::encode(&header, &claims, &self.key) {
            Ok(token) => token,
            Err(e) => {
                tracing::error!("cannot sign an identity assertion: {e}");
                return None;
            }
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        let token = Bytes::from(token);
        cache.insert(key, (now, token.clone()));
        Some(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    fn ada() -> User {
        User {
            id: 1,
            email: "ada@example.com".into(),
            display_name: "Ada".into(),
            groups: vec!["sales".into()],
            admin: false,
        }
    }

    #[tokio::test]
    async fn keys_are_sealed_at_rest_and_a_key_kept_in_clear_is_sealed_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let legacy = new_key_row();
        let clear = legacy.private_der.clone();
        store.add_signing_key(&legacy, KEYS_KEPT).await.unwrap();
        let secrets = SecretBox::from_key([3; 32]);
        let signer = AssertionSigner::load(&store, &secrets, "http://localhost:8080/")
            .await
            .unwrap();
        assert!(signer.jwks().contains(&legacy.kid));
        let stored = store.signing_keys().await.unwrap();
        assert_eq!(stored[0].kid, legacy.kid);
        assert_ne!(stored[0].private_der, clear, "sealed now");
        assert!(
            AssertionSigner::load(&store, &SecretBox::from_key([4; 32]), "x")
                .await
                .is_err(),
            "another instance key cannot read it"
        );
        let again = AssertionSigner::load(&store, &secrets, "http://localhost:8080/")
            .await
            .unwrap();
        assert_eq!(again.jwks(), signer.jwks());
    }

    #[tokio::test]
    async fn assertions_verify_against_the_published_key_and_survive_one_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let first = AssertionSigner::load(
            &store,
            &SecretBox::from_key([3; 32]),
            "http://localhost:8080/",
        )
        .await
        .unwrap();
        let token = String::from_utf8(first.assertion(&ada(), "sales").unwrap().to_vec()).unwrap();
        assert_eq!(
            first.assertion(&ada(), "sales").unwrap(),
            token,
            "reused within a minute"
        );

        rotate(&store, &SecretBox::from_key([3; 32])).await.unwrap();
        let second = AssertionSigner::load(
            &store,
            &SecretBox::from_key([3; 32]),
            "http://localhost:8080/",
        )
        .await
        .unwrap();
        let jwks: serde_json::Value = serde_json::from_str(second.jwks()).unwrap();
        assert_eq!(
            jwks["keys"].as_array().unwrap().len(),
            2,
            "the old key is still published"
        );
        let header = jsonwebtoken::decode_header(&token).unwrap();
        let jwk = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == header.kid.clone().unwrap())
            .unwrap();
        let key =
            DecodingKey::from_ec_components(jwk["x"].as_str().unwrap(), jwk["y"].as_str().unwrap())
                .unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&["sales"]);
        validation.set_issuer(&["http://localhost:8080/"]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation)
            .unwrap()
            .claims;
        assert_eq!(claims["email"], "ada@example.com");
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            LIFETIME_SECS
        );

        rotate(&store, &SecretBox::from_key([3; 32])).await.unwrap();
        let third = AssertionSigner::load(
            &store,
            &SecretBox::from_key([3; 32]),
            "http://localhost:8080/",
        )
        .await
        .unwrap();
        assert!(
            !third.jwks().contains(&header.kid.unwrap()),
            "two rotations later the first key is retired"
        );
    }
}
