//! Sign-in with a SAML 2.0 identity provider, Portico being the service provider (samael, with
//! xmlsec for the signatures). The request goes by HTTP-Redirect or HTTP-POST; the answer comes
//! back by HTTP-POST to the assertion consumer service (ACS).
//!
//! What is checked before anyone is signed in:
//! - the XML signature, against the provider's certificates from its metadata; everything the
//!   signature does not cover is cut away before the response is read (samael), so a wrapped
//!   or injected element cannot be believed;
//! - the response answers the request this browser started (`InResponseTo`, in the response
//!   and in the signed subject confirmation);
//! - destination and recipient are this provider's ACS URL; the audience is Portico's entity id;
//! - issuer is the provider's entity id;
//! - issue instant, `NotBefore` and `NotOnOrAfter` (conditions and subject confirmation), with
//!   the configured clock skew;
//! - the assertion has not been used before (kept in the store until it expires).

use super::{error_chain, ExternalProfile};
use chrono::{DateTime, Utc};
use portico_core::{SamlBinding, SamlConfig, SamlMetadata};
use samael::metadata::{
    EntityDescriptor, IndexedEndpoint, SpSsoDescriptor, HTTP_POST_BINDING, HTTP_REDIRECT_BINDING,
};
use samael::schema::{Assertion, AuthnRequest, Issuer, NameIdPolicy};
use samael::service_provider::ServiceProvider;
use samael::traits::ToXml;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Metadata from a URL is fetched again after this long, so certificate rollovers at the
/// provider are followed; when the provider cannot be reached then, the old copy serves on.
const METADATA_TTL: Duration = Duration::from_secs(24 * 3600);
/// A response bigger than this is not a sign-in (ADFS's are ~10 KiB).
const MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// samael's allowance between the provider issuing a response and its arrival, to which the
/// clock skew is added.
const MAX_ISSUE_DELAY: Duration = Duration::from_secs(90);

/// The attribute names tried, in order, when the configuration names none: the plain names,
/// the LDAP OIDs (Shibboleth, Keycloak), and the claim URIs of ADFS and Entra ID.
const EMAIL_ATTRIBUTES: &[&str] = &[
    "email",
    "mail",
    "emailAddress",
    "urn:oid:0.9.2342.19200300.100.1.3",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
];
const NAME_ATTRIBUTES: &[&str] = &[
    "displayName",
    "name",
    "cn",
    "urn:oid:2.16.840.1.113730.3.1.241",
    "http://schemas.microsoft.com/identity/claims/displayname",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
];
const GROUP_ATTRIBUTES: &[&str] = &[
    "groups",
    "memberOf",
    "Role",
    "urn:oid:1.3.6.1.4.1.5923.1.5.1.1",
    "http://schemas.xmlsoap.org/claims/Group",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
];
const EMAIL_NAME_ID: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
const TRANSIENT_NAME_ID: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";

/// Why a SAML sign-in failed, precisely, for the log. People see a plain sentence.
#[derive(Debug, thiserror::Error)]
pub enum SamlError {
    #[error("cannot read the provider's metadata from {origin}: {reason}. Check auth.saml metadata_url / metadata_file")]
    Metadata { origin: String, reason: String },
    #[error("the provider's metadata names no single sign-on service with the {0} binding; set binding = \"{1}\" or check the metadata")]
    NoSsoService(&'static str, &'static str),
    #[error("the provider's metadata has no signing certificate, so its assertions could not be checked; use metadata that includes the token-signing certificate")]
    NoSigningCertificate,
    #[error("cannot make the sign-in request: {0}")]
    Request(String),
    #[error("the SAMLResponse is not base64-encoded XML of at most 256 KiB")]
    Malformed,
    #[error("the response contains a document type declaration, which SAML forbids (an XML entity attack?)")]
    Doctype,
    #[error("the response carries no XML signature; the provider must sign the assertion or the response")]
    Unsigned,
    #[error("the provider answered with status {0}{1}")]
    Status(String, String),
    #[error("the response was refused: {0}")]
    Refused(String),
    #[error("the assertion was already used to sign in (a replay)")]
    Replayed,
    #[error("the assertion {0}")]
    Missing(String),
}

/// What Portico must remember between sending someone to the provider and their return.
#[derive(Debug, Clone)]
pub struct SamlPending {
    /// The `ID` of the AuthnRequest; the answer must name it in `InResponseTo`.
    pub request_id: String,
}

/// How to send the browser to the provider.
#[derive(Debug, Clone)]
pub enum SamlRequest {
    /// HTTP-Redirect: a plain redirect to this URL.
    Redirect(String),
    /// HTTP-POST: a form the browser submits to `url`.
    Post {
        url: String,
        saml_request: String,
        relay_state: String,
    },
}

/// An assertion that was accepted: its id and when it stops being valid, for the replay record.
#[derive(Debug, Clone)]
pub struct AcceptedAssertion {
    pub id: String,
    pub expires_at: i64,
}

pub struct SamlProvider {
    pub config: SamlConfig,
    entity_id: String,
    acs_url: String,
    metadata_url: String,
    http: reqwest::Client,
    idp: Mutex<Option<(Instant, Arc<EntityDescriptor>)>>,
}

impl SamlProvider {
    /// `portal` is the portal's base URL. Metadata from a file is read now, so a bad file
    /// stops Portico at start with the reason; from a URL it is fetched at the first sign-in.
    pub fn new(config: SamlConfig, portal: &str) -> Result<SamlProvider, SamlError> {
        let base = format!(
            "{}/_portico/saml/{}",
            portal.trim_end_matches('/'),
            config.common.id
        );
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::limited(3))
            .timeout(config.timeout)
            .build()
            .map_err(|e| SamlError::Request(format!("cannot make an HTTP client: {e}")))?;
        let provider = SamlProvider {
            entity_id: config
                .entity_id
                .clone()
                .unwrap_or_else(|| format!("{base}/metadata")),
            acs_url: format!("{base}/acs"),
            metadata_url: format!("{base}/metadata"),
            config,
            http,
            idp: Mutex::new(None),
        };
        if let SamlMetadata::File(path) = &provider.config.metadata {
            let source = path.display().to_string();
            let xml = std::fs::read_to_string(path).map_err(|e| SamlError::Metadata {
                origin: source.clone(),
                reason: e.to_string(),
            })?;
            let descriptor = provider.parse_metadata(&source, &xml)?;
            *provider.idp.try_lock().expect("not shared yet") =
                Some((Instant::now(), Arc::new(descriptor)));
        }
        Ok(provider)
    }

    /// `saml:<id>`.
    pub fn provider(&self) -> String {
        format!("saml:{}", self.config.common.id)
    }

    /// Portico's entity id at the provider (the audience of its assertions).
    pub fn entity_id(&self) -> &str {
        &self.entity_id
    }

    /// Where the provider posts its answer.
    pub fn acs_url(&self) -> &str {
        &self.acs_url
    }

    /// Where Portico's metadata for this provider is published.
    pub fn metadata_url(&self) -> &str {
        &self.metadata_url
    }

    /// Portico's service-provider metadata, for the identity provider's administrator.
    pub fn sp_metadata(&self) -> Result<String, SamlError> {
        let descriptor = EntityDescriptor {
            entity_id: Some(self.entity_id.clone()),
            sp_sso_descriptors: Some(vec![SpSsoDescriptor {
                protocol_support_enumeration: Some(
                    "urn:oasis:names:tc:SAML:2.0:protocol".to_owned(),
                ),
                authn_requests_signed: Some(false),
                want_assertions_signed: Some(true),
                name_id_formats: self.config.name_id_format.clone().map(|f| vec![f]),
                assertion_consumer_services: vec![IndexedEndpoint {
                    binding: HTTP_POST_BINDING.to_owned(),
                    location: self.acs_url.clone(),
                    response_location: None,
                    index: 0,
                    is_default: Some(true),
                }],
                ..SpSsoDescriptor::default()
            }]),
            ..EntityDescriptor::default()
        };
        descriptor
            .to_string()
            .map_err(|e| SamlError::Request(format!("cannot write the metadata: {e}")))
    }

    fn parse_metadata(&self, source: &str, xml: &str) -> Result<EntityDescriptor, SamlError> {
        let bad = |reason: String| SamlError::Metadata {
            origin: source.to_owned(),
            reason,
        };
        if has_doctype(xml) {
            return Err(bad("it contains a document type declaration".into()));
        }
        let descriptor: EntityDescriptor = xml.parse().map_err(|e| {
            bad(format!(
                "it is not SAML metadata (an EntityDescriptor): {e}"
            ))
        })?;
        if descriptor.entity_id.as_deref().unwrap_or("").is_empty() {
            return Err(bad("it has no entityID".into()));
        }
        if descriptor.idp_sso_descriptors.is_none() {
            return Err(bad(
                "it describes no identity provider (no IDPSSODescriptor); is it the metadata of the provider, not of Portico?".into(),
            ));
        }
        let sp = self.service_provider(descriptor);
        match sp.idp_signing_certs() {
            Ok(Some(_)) => {}
            Ok(None) => return Err(SamlError::NoSigningCertificate),
            Err(e) => return Err(bad(format!("a certificate in it cannot be read: {e}"))),
        }
        let binding = self.binding();
        if sp.sso_binding_location(binding.0).is_none() {
            return Err(SamlError::NoSsoService(binding.1, binding.2));
        }
        Ok(sp.idp_metadata)
    }

    /// The binding's URN, its name, and the other binding's config value.
    fn binding(&self) -> (&'static str, &'static str, &'static str) {
        match self.config.binding {
            SamlBinding::Redirect => (HTTP_REDIRECT_BINDING, "HTTP-Redirect", "post"),
            SamlBinding::Post => (HTTP_POST_BINDING, "HTTP-POST", "redirect"),
        }
    }

    fn service_provider(&self, idp: EntityDescriptor) -> ServiceProvider {
        let skew = chrono::Duration::from_std(self.config.clock_skew).unwrap_or_default();
        ServiceProvider {
            entity_id: Some(self.entity_id.clone()),
            metadata_url: Some(self.metadata_url.clone()),
            acs_url: Some(self.acs_url.clone()),
            slo_url: None,
            idp_metadata: idp,
            authn_name_id_format: self.config.name_id_format.clone(),
            allow_idp_initiated: false,
            max_issue_delay: chrono::Duration::from_std(MAX_ISSUE_DELAY).unwrap_or_default() + skew,
            max_clock_skew: skew,
            ..ServiceProvider::default()
        }
    }

    async fn idp_metadata(&self) -> Result<Arc<EntityDescriptor>, SamlError> {
        let mut cached = self.idp.lock().await;
        let url = match &self.config.metadata {
            SamlMetadata::Url(url) => url,
            SamlMetadata::File(_) => {
                return cached
                    .as_ref()
                    .map(|(_, d)| d.clone())
                    .ok_or(SamlError::NoSigningCertificate)
            }
        };
        if let Some((at, descriptor)) = cached.as_ref() {
            if at.elapsed() < METADATA_TTL {
                return Ok(descriptor.clone());
            }
        }
        match self.fetch_metadata(url).await {
            Ok(descriptor) => {
                let descriptor = Arc::new(descriptor);
                *cached = Some((Instant::now(), descriptor.clone()));
                Ok(descriptor)
            }
            Err(e) => match cached.as_ref() {
                Some((_, stale)) => {
                    tracing::warn!(
                        "{}: keeping the metadata fetched earlier: {e}",
                        self.provider()
                    );
                    Ok(stale.clone())
                }
                None => Err(e),
            },
        }
    }

    async fn fetch_metadata(&self, url: &str) -> Result<EntityDescriptor, SamlError> {
        let bad = |reason: String| SamlError::Metadata {
            origin: url.to_owned(),
            reason,
        };
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| bad(error_chain(&e)))?;
        if !response.status().is_success() {
            return Err(bad(format!("the server answered {}", response.status())));
        }
        let xml = response.text().await.map_err(|e| bad(error_chain(&e)))?;
        self.parse_metadata(url, &xml)
    }

    /// The request that sends the browser to the provider, with `relay_state` to come back with.
    pub async fn begin(&self, relay_state: &str) -> Result<(SamlRequest, SamlPending), SamlError> {
        let idp = self.idp_metadata().await?;
        let sp = self.service_provider((*idp).clone());
        let binding = self.binding();
        let destination = sp
            .sso_binding_location(binding.0)
            .ok_or(SamlError::NoSsoService(binding.1, binding.2))?;
        let request = AuthnRequest {
            // 128 random bits: the answer is matched to the request by this id. An XML id must
            // not start with a digit.
            id: format!("_{}", hex::encode(rand::random::<[u8; 16]>())),
            issue_instant: Utc::now(),
            version: "2.0".into(),
            destination: Some(destination.clone()),
            assertion_consumer_service_url: Some(self.acs_url.clone()),
            protocol_binding: Some(HTTP_POST_BINDING.into()),
            issuer: Some(Issuer {
                value: Some(self.entity_id.clone()),
                ..Issuer::default()
            }),
            name_id_policy: self
                .config
                .name_id_format
                .clone()
                .map(|format| NameIdPolicy {
                    allow_create: Some(true),
                    format: Some(format),
                    ..NameIdPolicy::default()
                }),
            ..AuthnRequest::default()
        };
        let pending = SamlPending {
            request_id: request.id.clone(),
        };
        let sent = match self.config.binding {
            SamlBinding::Redirect => SamlRequest::Redirect(
                request
                    .redirect(relay_state)
                    .map_err(|e| SamlError::Request(e.to_string()))?
                    .ok_or_else(|| SamlError::Request("no destination".into()))?
                    .to_string(),
            ),
            SamlBinding::Post => {
                use base64::Engine;
                let xml = request
                    .to_string()
                    .map_err(|e| SamlError::Request(format!("{e:?}")))?;
                SamlRequest::Post {
                    url: destination,
                    saml_request: base64::engine::general_purpose::STANDARD.encode(xml),
                    relay_state: relay_state.to_owned(),
                }
            }
        };
        Ok((sent, pending))
    }

    /// Checks the provider's answer (the form field `SAMLResponse`) to the request in
    /// `pending` and reads the person from it. The caller records the accepted assertion
    /// (`use_saml_assertion`) before believing it.
    pub async fn finish(
        &self,
        saml_response: &str,
        pending: &SamlPending,
    ) -> Result<(ExternalProfile, AcceptedAssertion), SamlError> {
        let xml = decode_response(saml_response)?;
        if has_doctype(&xml) {
            return Err(SamlError::Doctype);
        }
        if !xml.contains("http://www.w3.org/2000/09/xmldsig#") || !xml.contains("SignatureValue") {
            return Err(SamlError::Unsigned);
        }
        let idp = self.idp_metadata().await?;
        let sp = self.service_provider((*idp).clone());
        let request_id = pending.request_id.as_str();
        // Signature, destination, InResponseTo, issuer, status, times, audience (samael).
        let assertion = sp
            .parse_xml_response(&xml, Some(&[request_id]))
            .map_err(|e| match e {
                samael::service_provider::Error::ResponseBadStatusCode { code } => {
                    SamlError::Status(code, status_message(&xml))
                }
                samael::service_provider::Error::FailedToValidateSignature => SamlError::Refused(
                    "its XML signature does not verify with the provider's certificate from the metadata (altered in transit, signed by someone else, or the provider changed its certificate: then refresh the metadata)".into(),
                ),
                samael::service_provider::Error::FailedToParseSamlResponse => SamlError::Refused(
                    "nothing signed by the provider's certificate is left to read (the signed part does not contain an assertion)".into(),
                ),
                other => SamlError::Refused(other.to_string()),
            })?;
        let expires_at = self.check_subject_confirmation(&assertion, request_id)?;
        let profile = self.profile(&assertion)?;
        Ok((
            profile,
            AcceptedAssertion {
                id: assertion.id.clone(),
                expires_at,
            },
        ))
    }

    /// The bearer confirmation inside the signed assertion must name this request, this ACS,
    /// and still be valid (samael checks the conditions but not this). Returns when the
    /// assertion stops being valid.
    fn check_subject_confirmation(
        &self,
        assertion: &Assertion,
        request_id: &str,
    ) -> Result<i64, SamlError> {
        let now = Utc::now();
        let skew = chrono::Duration::from_std(self.config.clock_skew).unwrap_or_default();
        let confirmations = assertion
            .subject
            .as_ref()
            .and_then(|s| s.subject_confirmations.as_ref())
            .ok_or_else(|| SamlError::Missing("has no subject confirmation".into()))?;
        let mut reasons = Vec::new();
        for data in confirmations
            .iter()
            .filter(|c| c.method.as_deref() == Some("urn:oasis:names:tc:SAML:2.0:cm:bearer"))
            .filter_map(|c| c.subject_confirmation_data.as_ref())
        {
            if data.recipient.as_deref() != Some(self.acs_url.as_str()) {
                reasons.push(format!(
                    "its recipient is {:?}, not {}",
                    data.recipient.as_deref().unwrap_or("missing"),
                    self.acs_url
                ));
                continue;
            }
            if data.in_response_to.as_deref() != Some(request_id) {
                reasons.push("it answers another request (InResponseTo)".into());
                continue;
            }
            let Some(not_on_or_after) = data.not_on_or_after else {
                reasons.push("its subject confirmation has no NotOnOrAfter".into());
                continue;
            };
            if not_on_or_after + skew <= now {
                reasons.push(format!("it expired at {not_on_or_after}"));
                continue;
            }
            if data.not_before.is_some_and(|t| now < t - skew) {
                reasons.push("its subject confirmation is not valid yet (clock skew?)".into());
                continue;
            }
            let conditions_end = assertion
                .conditions
                .as_ref()
                .and_then(|c| c.not_on_or_after)
                .unwrap_or(not_on_or_after);
            let end: DateTime<Utc> = not_on_or_after.max(conditions_end) + skew;
            return Ok(end.timestamp());
        }
        if reasons.is_empty() {
            reasons.push("has no bearer subject confirmation".into());
        }
        Err(SamlError::Refused(reasons.join("; ")))
    }

    fn profile(&self, assertion: &Assertion) -> Result<ExternalProfile, SamlError> {
        let attributes: Vec<&samael::attribute::Attribute> = assertion
            .attribute_statements
            .iter()
            .flatten()
            .flat_map(|s| s.attributes.iter())
            .collect();
        let values = |configured: &Option<String>, defaults: &[&str]| -> Vec<String> {
            let names: Vec<&str> = match configured {
                Some(name) => vec![name.as_str()],
                None => defaults.to_vec(),
            };
            names
                .iter()
                .find_map(|name| {
                    let found: Vec<String> = attributes
                        .iter()
                        .filter(|a| {
                            a.name.as_deref() == Some(name)
                                || a.friendly_name.as_deref() == Some(name)
                        })
                        .flat_map(|a| a.values.iter().filter_map(|v| v.value.clone()))
                        .map(|v| v.trim().to_owned())
                        .filter(|v| !v.is_empty())
                        .collect();
                    (!found.is_empty()).then_some(found)
                })
                .unwrap_or_default()
        };
        let sent_names = || {
            let names: Vec<&str> = attributes
                .iter()
                .filter_map(|a| a.name.as_deref())
                .collect();
            if names.is_empty() {
                "it sent no attributes".to_owned()
            } else {
                format!("it sent {}", names.join(", "))
            }
        };
        let name_id = assertion
            .subject
            .as_ref()
            .and_then(|s| s.name_id.as_ref())
            .filter(|n| !n.value.trim().is_empty());
        let subject = match &self.config.subject_attribute {
            Some(attribute) => values(&Some(attribute.clone()), &[])
                .into_iter()
                .next()
                .ok_or_else(|| {
                    SamlError::Missing(format!(
                        "has no {attribute} attribute (subject_attribute); {}",
                        sent_names()
                    ))
                })?,
            None => {
                let name_id = name_id.ok_or_else(|| {
                    SamlError::Missing("has no NameID; set subject_attribute".into())
                })?;
                if name_id.format.as_deref() == Some(TRANSIENT_NAME_ID) {
                    return Err(SamlError::Missing(
                        "names the person with a transient NameID, which changes at every sign-in; configure a persistent NameID at the provider (name_id_format = \"persistent\") or set subject_attribute".into(),
                    ));
                }
                name_id.value.trim().to_owned()
            }
        };
        let email = values(&self.config.email_attribute, EMAIL_ATTRIBUTES)
            .into_iter()
            .next()
            .or_else(|| {
                name_id
                    .filter(|n| {
                        self.config.email_attribute.is_none()
                            && n.format.as_deref() == Some(EMAIL_NAME_ID)
                    })
                    .map(|n| n.value.trim().to_owned())
            })
            .ok_or_else(|| {
                let looked = match &self.config.email_attribute {
                    Some(name) => name.clone(),
                    None => format!("{} or an e-mail NameID", EMAIL_ATTRIBUTES.join(", ")),
                };
                SamlError::Missing(format!(
                    "has no e-mail address (looked for {looked}); {}; set email_attribute",
                    sent_names()
                ))
            })?;
        Ok(ExternalProfile {
            provider: self.provider(),
            subject,
            email,
            // The provider states the address from its own directory, as LDAP does.
            email_verified: true,
            display_name: values(&self.config.name_attribute, NAME_ATTRIBUTES)
                .into_iter()
                .next(),
            groups: values(&self.config.groups_attribute, GROUP_ATTRIBUTES),
        })
    }
}

fn decode_response(encoded: &str) -> Result<String, SamlError> {
    use base64::Engine;
    if encoded.len() > MAX_RESPONSE_BYTES * 4 / 3 + 4 {
        return Err(SamlError::Malformed);
    }
    // Some providers wrap the base64 in lines.
    let compact: String = encoded.split_ascii_whitespace().collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| SamlError::Malformed)?;
    String::from_utf8(bytes).map_err(|_| SamlError::Malformed)
}

fn has_doctype(xml: &str) -> bool {
    xml.contains("<!DOCTYPE") || xml.contains("<!ENTITY")
}

/// The provider's `StatusMessage`, when it gave one, for the log.
fn status_message(xml: &str) -> String {
    let Some(start) = xml.find("StatusMessage>") else {
        return String::new();
    };
    let rest = &xml[start + "StatusMessage>".len()..];
    let message: String = rest
        .split('<')
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    if message.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", message.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_that_are_not_base64_xml_or_carry_a_doctype_are_refused_before_parsing() {
        assert!(matches!(decode_response("%%%"), Err(SamlError::Malformed)));
        let huge = "A".repeat(MAX_RESPONSE_BYTES * 2);
        assert!(matches!(decode_response(&huge), Err(SamlError::Malformed)));
        assert!(has_doctype("<!DOCTYPE x [<!ENTITY a \"b\">]><x/>"));
        assert_eq!(
            status_message("<samlp:StatusMessage>Cancelled</samlp:StatusMessage>"),
            ": Cancelled"
        );
    }
}
