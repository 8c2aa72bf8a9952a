//! Sign-in with an OpenID Connect provider (openidconnect): discovery, the authorization code
//! flow with PKCE, state and nonce, ID token validation (signature against the provider's
//! JWKS, issuer, audience, expiry, nonce) by the library, userinfo, and claims read by
//! configurable paths.

use super::{error_chain, ExternalProfile};
use openidconnect::core::{
    CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IdToken, IssuerUrl,
    LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, TokenResponse, UserInfoClaims,
};
use portico_core::OidcConfig;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Provider metadata (endpoints, JWKS) is fetched again after this long, so key rotations at
/// the provider are followed.
const METADATA_TTL: Duration = Duration::from_secs(600);

/// Every claim, whatever its name: read by path after the library has verified the token.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AllClaims {
    #[serde(flatten)]
    claims: serde_json::Map<String, Value>,
}
impl AdditionalClaims for AllClaims {}

type FullIdToken =
    IdToken<AllClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

/// Why an OIDC sign-in failed, precisely, for the log. People see a plain sentence.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("cannot read the provider's discovery document at {issuer}/.well-known/openid-configuration: {reason}. Check auth.oidc issuer and that the provider is reachable")]
    Discovery { issuer: String, reason: String },
    #[error("the provider did not answer within {0}s")]
    Timeout(u64),
    #[error("the provider refused the authorization code: {0}. Check client_id, the client secret ({1}) and that the redirect URI is registered")]
    Exchange(String, String),
    #[error("the provider returned no ID token; is the openid scope allowed for this client?")]
    NoIdToken,
    #[error("the ID token was refused: {0}")]
    IdToken(String),
    #[error("the userinfo endpoint failed: {0}")]
    UserInfo(String),
    #[error("the provider said: {0}")]
    Provider(String),
    #[error("{0}")]
    Config(String),
}

/// The provider's tokens worth keeping after a sign-in (sealed in the store).
#[derive(Debug, Clone)]
pub struct OidcTokens {
    pub id_token: String,
    pub refresh_token: Option<String>,
}

/// Why a refresh failed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The provider refused the refresh token (revoked, expired, person disabled): the
    /// session must end.
    #[error("the provider refused to refresh the session: {0}")]
    Refused(String),
    /// The provider could not be asked; try again later.
    #[error("cannot refresh the session now: {0}")]
    Unavailable(String),
}

/// What Portico must remember between sending someone to the provider and their return.
#[derive(Debug, Clone)]
pub struct OidcPending {
    pub nonce: String,
    pub pkce_verifier: String,
}

pub struct OidcProvider {
    pub config: OidcConfig,
    secret: Option<String>,
    redirect_uri: String,
    http: reqwest::Client,
    metadata: Mutex<Option<(Instant, ProviderMetadataWithLogout)>>,
}

impl OidcProvider {
    /// `portal` is the portal's base URL; the redirect URI is
    /// `<portal>/_portico/sso/<id>/callback`. The client secret comes from the environment.
    pub fn new(config: OidcConfig, portal: &str) -> Result<OidcProvider, OidcError> {
        let secret = std::env::var(config.secret_env())
            .ok()
            .filter(|s| !s.is_empty());
        // No redirects: the library's advice against server-side request forgery.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .build()
            .map_err(|e| OidcError::Config(format!("cannot make an HTTP client: {e}")))?;
        Ok(OidcProvider {
            redirect_uri: format!(
                "{}/_portico/sso/{}/callback",
                portal.trim_end_matches('/'),
                config.common.id
            ),
            config,
            secret,
            http,
            metadata: Mutex::new(None),
        })
    }

    /// `oidc:<id>`.
    pub fn provider(&self) -> String {
        format!("oidc:{}", self.config.common.id)
    }

    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    async fn client_metadata(&self) -> Result<ProviderMetadataWithLogout, OidcError> {
        let mut cached = self.metadata.lock().await;
        if let Some((at, metadata)) = cached.as_ref() {
            if at.elapsed() < METADATA_TTL {
                return Ok(metadata.clone());
            }
        }
        let discovery = |reason: String| OidcError::Discovery {
            issuer: self.config.issuer.clone(),
            reason,
        };
        let issuer =
            IssuerUrl::new(self.config.issuer.clone()).map_err(|e| discovery(e.to_string()))?;
        let metadata = ProviderMetadataWithLogout::discover_async(issuer, &self.http)
            .await
            .map_err(|e| discovery(error_chain(&e)))?;
        *cached = Some((Instant::now(), metadata.clone()));
        Ok(metadata)
    }

    /// Where to send the browser, with the state to expect back and what to remember.
    pub async fn begin(&self) -> Result<(String, String, OidcPending), OidcError> {
        let metadata = self.client_metadata().await?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            self.secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(
            RedirectUrl::new(self.redirect_uri.clone())
                .map_err(|e| OidcError::Config(e.to_string()))?,
        );
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in self.config.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        // OpenID Connect Core 11: offline access needs the person's consent.
        if self.config.scopes.iter().any(|s| s == "offline_access") {
            request = request.add_prompt(CoreAuthPrompt::Consent);
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok((
            url.to_string(),
            state.secret().clone(),
            OidcPending {
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
            },
        ))
    }

    /// Redeems the code the provider sent back and returns who signed in, with the tokens
    /// to keep.
    pub async fn finish(
        &self,
        code: &str,
        pending: &OidcPending,
    ) -> Result<(ExternalProfile, OidcTokens), OidcError> {
        let seconds = self.config.timeout.as_secs() * 3;
        tokio::time::timeout(Duration::from_secs(seconds), self.redeem(code, pending))
            .await
            .map_err(|_| OidcError::Timeout(seconds))?
    }

    async fn redeem(
        &self,
        code: &str,
        pending: &OidcPending,
    ) -> Result<(ExternalProfile, OidcTokens), OidcError> {
        let metadata = self.client_metadata().await?;
        let has_userinfo = metadata.userinfo_endpoint().is_some();
        let client = CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(self.config.client_id.clone()),
            self.secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(
            RedirectUrl::new(self.redirect_uri.clone())
                .map_err(|e| OidcError::Config(e.to_string()))?,
        );
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Config(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Exchange(error_chain(&e), self.config.secret_env()))?;
        let raw = tokens.id_token().ok_or(OidcError::NoIdToken)?.to_string();
        let id_token: FullIdToken = raw
            .parse()
            .map_err(|e: serde_json::Error| OidcError::IdToken(e.to_string()))?;
        let verifier = client.id_token_verifier();
        let nonce = Nonce::new(pending.nonce.clone());
        let claims = id_token
            .claims(&verifier, &nonce)
            .map_err(|e| OidcError::IdToken(error_chain(&e)))?;
        let subject = claims.subject().clone();
        let mut all = serde_json::to_value(claims).unwrap_or(Value::Null);
        if self.config.userinfo && has_userinfo {
            let info = self
                .user_info(metadata, tokens.access_token().clone(), &subject)
                .await
                .map_err(OidcError::UserInfo)?;
            merge(&mut all, info);
        }
        let profile = self.profile(subject.as_str(), &all);
        let kept = OidcTokens {
            id_token: raw,
            refresh_token: tokens.refresh_token().map(|t| t.secret().clone()),
        };
        Ok((profile, kept))
    }

    fn profile(&self, subject: &str, all: &Value) -> ExternalProfile {
        ExternalProfile {
            provider: self.provider(),
            subject: subject.to_owned(),
            email: claim_text(all, &self.config.email_claim).unwrap_or_default(),
            email_verified: matches!(claim(all, "email_verified"), Some(Value::Bool(true)))
                || matches!(claim(all, "email_verified"), Some(Value::String(s)) if s == "true"),
            display_name: claim_text(all, &self.config.name_claim),
            groups: claim_list(all, &self.config.groups_claim),
        }
    }

    /// The userinfo endpoint's claims, checked to be about `subject`.
    async fn user_info(
        &self,
        metadata: ProviderMetadataWithLogout,
        access_token: openidconnect::AccessToken,
        subject: &openidconnect::SubjectIdentifier,
    ) -> Result<Value, String> {
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            self.secret.clone().map(ClientSecret::new),
        );
        let info: UserInfoClaims<AllClaims, CoreGenderClaim> = client
            .user_info(access_token, Some(subject.clone()))
            .map_err(|e| e.to_string())?
            .request_async(&self.http)
            .await
            .map_err(|e| error_chain(&e))?;
        serde_json::to_value(info).map_err(|e| e.to_string())
    }

    /// Uses a refresh token: the person's current claims (from userinfo, else the new ID
    /// token) and the rotated refresh token, if the provider rotates them.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        subject: &str,
    ) -> Result<(ExternalProfile, Option<String>), RefreshError> {
        let unavailable = |e: String| RefreshError::Unavailable(e);
        let metadata = self
            .client_metadata()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let has_userinfo = metadata.userinfo_endpoint().is_some();
        let client = CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(self.config.client_id.clone()),
            self.secret.clone().map(ClientSecret::new),
        );
        let token = RefreshToken::new(refresh_token.to_owned());
        let tokens = client
            .exchange_refresh_token(&token)
            .map_err(|e| unavailable(e.to_string()))?
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(response) => {
                    RefreshError::Refused(response.to_string())
                }
                other => unavailable(error_chain(&other)),
            })?;
        let subject_id = openidconnect::SubjectIdentifier::new(subject.to_owned());
        let mut all = Value::Object(Default::default());
        if let Some(id_token) = tokens.id_token() {
            let id_token: FullIdToken = id_token
                .to_string()
                .parse()
                .map_err(|e: serde_json::Error| RefreshError::Refused(e.to_string()))?;
            // A refreshed ID token carries no nonce (OpenID Connect Core 12.2).
            let claims = id_token
                .claims(&client.id_token_verifier(), |_: Option<&Nonce>| Ok(()))
                .map_err(|e| RefreshError::Refused(error_chain(&e)))?;
            if claims.subject() != &subject_id {
                return Err(RefreshError::Refused(
                    "the ID token names someone else".into(),
                ));
            }
            all = serde_json::to_value(claims).unwrap_or(Value::Null);
        }
        if self.config.userinfo && has_userinfo {
            let info = self
                .user_info(metadata, tokens.access_token().clone(), &subject_id)
                .await
                .map_err(unavailable)?;
            merge(&mut all, info);
        }
        let rotated = tokens.refresh_token().map(|t| t.secret().clone());
        Ok((self.profile(subject, &all), rotated))
    }

    /// Where to send the browser to end the session at the provider too, if it offers that.
    pub async fn logout_url(&self, id_token: &str, post_logout: &str) -> Option<String> {
        if !self.config.end_provider_session {
            return None;
        }
        let metadata = self.client_metadata().await.ok()?;
        let endpoint = metadata
            .additional_metadata()
            .end_session_endpoint
            .clone()?;
        let id_token: FullIdToken = id_token.parse().ok()?;
        let mut request = LogoutRequest::from(endpoint)
            .set_id_token_hint(&id_token)
            .set_client_id(ClientId::new(self.config.client_id.clone()));
        if let Ok(url) = PostLogoutRedirectUrl::new(post_logout.to_owned()) {
            request = request.set_post_logout_redirect_uri(url);
        }
        Some(request.http_get_url().to_string())
    }
}

/// Userinfo claims win over the ID token's.
fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(into), Value::Object(from)) = (into, from) {
        into.extend(from);
    }
}

/// A claim by path: the whole path as one claim name first (`cognito:groups`,
/// `https://example.com/groups`), else dot-separated (`realm_access.roles`).
pub fn claim<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    path.split('.')
        .try_fold(claims, |value, key| value.get(key))
}

fn claim_text(claims: &Value, path: &str) -> Option<String> {
    match claim(claims, path)? {
        Value::String(s) => Some(s.clone()),
        // Some providers send localised names as {"": "Ada"}.
        Value::Object(map) => map.values().find_map(|v| v.as_str().map(str::to_owned)),
        _ => None,
    }
}

/// Groups as a list of strings, or one string of names separated by commas or spaces.
fn claim_list(claims: &Value, path: &str) -> Vec<String> {
    match claim(claims, path) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(text)) => text
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_found_by_name_or_by_dotted_path() {
        let claims = serde_json::json!({
            "email": "ada@example.com",
            "cognito:groups": ["analysts"],
            "https://example.com/groups": "a, b",
            "realm_access": { "roles": ["admin", "viewer"] },
            "name": { "": "Ada" },
        });
        assert_eq!(claim_text(&claims, "email").unwrap(), "ada@example.com");
        assert_eq!(claim_list(&claims, "cognito:groups"), ["analysts"]);
        assert_eq!(
            claim_list(&claims, "https://example.com/groups"),
            ["a", "b"]
        );
        assert_eq!(
            claim_list(&claims, "realm_access.roles"),
            ["admin", "viewer"]
        );
        assert_eq!(claim_text(&claims, "name").unwrap(), "Ada");
        assert!(claim_list(&claims, "missing.path").is_empty());
    }
}
