//! `[[auth.ldap]]`, `[[auth.oidc]]` and `[[auth.saml]]`: single sign-on providers, as
//! written and as validated. What every provider shares (id, name, account linking, e-mail
//! domains, which groups to import and how to name them) is `SsoCommon`.

use super::Problem;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The keys every provider table accepts (repeated in each table: serde cannot combine
/// `flatten` with `deny_unknown_fields`).
pub struct RawCommon {
    pub id: String,
    pub name: Option<String>,
    pub link_existing_accounts: bool,
    pub allowed_email_domains: Vec<String>,
    pub import_groups: Option<Vec<String>>,
    pub group_map: BTreeMap<String, String>,
}

/// Takes the shared keys out of a raw provider table.
macro_rules! raw_common {
    ($raw:expr) => {
        RawCommon {
            id: $raw.id,
            name: $raw.name,
            link_existing_accounts: $raw.link_existing_accounts,
            allowed_email_domains: $raw.allowed_email_domains,
            import_groups: $raw.import_groups,
            group_map: $raw.group_map,
        }
    };
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLdap {
    pub id: String,
    pub name: Option<String>,
    #[serde(default)]
    pub link_existing_accounts: bool,
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
    pub import_groups: Option<Vec<String>>,
    #[serde(default)]
    pub group_map: BTreeMap<String, String>,
    pub url: String,
    #[serde(default)]
    pub starttls: bool,
    pub bind_dn: Option<String>,
    pub user_base: String,
    pub user_filter: Option<String>,
    pub email_attribute: Option<String>,
    pub name_attribute: Option<String>,
    /// `"memberOf"` (default) or `"search"`.
    pub groups: Option<String>,
    pub group_base: Option<String>,
    pub group_filter: Option<String>,
    pub group_name_attribute: Option<String>,
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOidc {
    pub id: String,
    pub name: Option<String>,
    #[serde(default)]
    pub link_existing_accounts: bool,
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
    pub import_groups: Option<Vec<String>>,
    #[serde(default)]
    pub group_map: BTreeMap<String, String>,
    pub issuer: String,
    pub client_id: String,
    pub scopes: Option<Vec<String>>,
    pub email_claim: Option<String>,
    pub name_claim: Option<String>,
    pub groups_claim: Option<String>,
    pub userinfo: Option<bool>,
    pub refresh_interval_secs: Option<u64>,
    pub end_provider_session: Option<bool>,
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSaml {
    pub id: String,
    pub name: Option<String>,
    #[serde(default)]
    pub link_existing_accounts: bool,
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
    pub import_groups: Option<Vec<String>>,
    #[serde(default)]
    pub group_map: BTreeMap<String, String>,
    pub metadata_url: Option<String>,
    pub metadata_file: Option<PathBuf>,
    pub entity_id: Option<String>,
    pub binding: Option<String>,
    pub name_id_format: Option<String>,
    pub subject_attribute: Option<String>,
    pub email_attribute: Option<String>,
    pub name_attribute: Option<String>,
    pub groups_attribute: Option<String>,
    pub clock_skew_secs: Option<u64>,
    pub timeout_secs: Option<u64>,
}

/// What every provider shares, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct SsoCommon {
    /// Short and stable: it names the provider in the store (`ldap:corp`), so renaming it
    /// detaches the accounts it made.
    pub id: String,
    /// On the sign-in page's button or hint.
    pub name: String,
    /// Whether the first sign-in may attach to an existing Portico account with the same
    /// (verified) e-mail address. Off by default: a directory that lets anyone claim any
    /// address could otherwise take over accounts.
    pub link_existing_accounts: bool,
    /// Only addresses in these domains may sign in (empty: any).
    pub allowed_email_domains: Vec<String>,
    /// Which of the provider's groups become Portico groups: exact names, or prefixes ending
    /// in `*`. Default: all.
    pub import_groups: Vec<String>,
    /// Provider group → Portico group name.
    pub group_map: BTreeMap<String, String>,
}

impl SsoCommon {
    /// The Portico group for a provider group, if it is imported.
    pub fn portico_group(&self, external: &str) -> Option<String> {
        let imported = self
            .import_groups
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => external.starts_with(prefix),
                None => pattern == external,
            });
        imported.then(|| {
            self.group_map
                .get(external)
                .cloned()
                .unwrap_or_else(|| external.to_owned())
        })
    }

    /// Whether an address's domain is allowed.
    pub fn email_allowed(&self, email: &str) -> bool {
        let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        self.allowed_email_domains.is_empty()
            || self
                .allowed_email_domains
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(domain))
    }
}

/// How an LDAP directory is protected in transit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LdapSecurity {
    /// `ldaps://`.
    Tls,
    /// `ldap://` upgraded with StartTLS.
    StartTls,
    /// Plain `ldap://`: only allowed to a directory on this machine.
    None,
}

/// Where a user's groups come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LdapGroups {
    /// The user entry's `memberOf` attribute (Active Directory, OpenLDAP's memberof overlay).
    MemberOf,
    /// A search under `base` with `filter` (`{dn}` and `{login}` replaced), naming each group
    /// by `name_attribute`.
    Search {
        base: String,
        filter: String,
        name_attribute: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct LdapConfig {
    pub common: SsoCommon,
    pub url: String,
    pub security: LdapSecurity,
    /// The service account that searches for users; anonymous search when `None`. Its
    /// password comes from `PORTICO_LDAP_<ID>_PASSWORD`.
    pub bind_dn: Option<String>,
    pub user_base: String,
    /// `{login}` is replaced by what the person typed, escaped.
    pub user_filter: String,
    pub email_attribute: String,
    pub name_attribute: String,
    pub groups: LdapGroups,
    pub timeout: Duration,
}

impl LdapConfig {
    /// The environment variable holding the service account's password.
    pub fn password_env(&self) -> String {
        format!(
            "PORTICO_LDAP_{}_PASSWORD",
            self.common.id.to_ascii_uppercase().replace('-', "_")
        )
    }
}

/// An OpenID Connect provider (Okta, Entra ID, Keycloak, Cognito, Google, …).
#[derive(Debug, Clone, PartialEq)]
pub struct OidcConfig {
    pub common: SsoCommon,
    /// The issuer URL; discovery reads `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// Requested scopes; `openid` is always included.
    pub scopes: Vec<String>,
    /// Claim paths: a top-level claim name as is (`email`, `cognito:groups`,
    /// `https://example.com/groups`), else dot-separated (`realm_access.roles`).
    pub email_claim: String,
    pub name_claim: String,
    pub groups_claim: String,
    /// Also read the userinfo endpoint (claims there win).
    pub userinfo: bool,
    /// How often a live session's groups are refreshed with the provider's refresh token
    /// (when it gives one); `None`: never. A refused refresh ends the session.
    pub refresh_interval: Option<Duration>,
    /// Sign-out also ends the session at the provider (RP-initiated logout), when it offers
    /// an end-session endpoint.
    pub end_provider_session: bool,
    pub timeout: Duration,
}

impl OidcConfig {
    /// The environment variable holding the client secret (none for a public client).
    pub fn secret_env(&self) -> String {
        format!(
            "PORTICO_OIDC_{}_SECRET",
            self.common.id.to_ascii_uppercase().replace('-', "_")
        )
    }
}

pub(super) fn oidc(
    index: usize,
    raw: RawOidc,
    seen: &mut HashSet<String>,
    problems: &mut Vec<Problem>,
) -> OidcConfig {
    let key = format!("auth.oidc[{index}]");
    let common = common(&key, raw_common!(raw), seen, problems);
    let issuer = raw.issuer.trim().trim_end_matches('/').to_owned();
    let secure = issuer.starts_with("https://");
    let local = issuer
        .strip_prefix("http://")
        .is_some_and(|rest| is_loopback_host(url_host(rest)));
    if !secure && !local {
        problems.push(Problem::new(
            format!("{key}.issuer"),
            format!("= \"{issuer}\" must be an https:// URL (plain http is only accepted for a provider on this machine), e.g. \"https://login.example.com/realms/main\""),
        ));
    }
    if raw.client_id.trim().is_empty() {
        problems.push(Problem::new(
            format!("{key}.client_id"),
            "is empty; copy the client (application) id from the provider",
        ));
    }
    let mut scopes = raw
        .scopes
        .unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]);
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".into());
    }
    OidcConfig {
        common,
        issuer,
        client_id: raw.client_id.trim().to_owned(),
        scopes,
        email_claim: raw.email_claim.unwrap_or_else(|| "email".into()),
        name_claim: raw.name_claim.unwrap_or_else(|| "name".into()),
        groups_claim: raw.groups_claim.unwrap_or_else(|| "groups".into()),
        userinfo: raw.userinfo.unwrap_or(true),
        refresh_interval: match raw.refresh_interval_secs.unwrap_or(300) {
            0 => None,
            secs => Some(Duration::from_secs(secs.max(10))),
        },
        end_provider_session: raw.end_provider_session.unwrap_or(true),
        timeout: Duration::from_secs(raw.timeout_secs.unwrap_or(10).max(1)),
    }
}

/// Where a SAML identity provider's metadata (endpoints, signing certificates) comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SamlMetadata {
    /// Fetched at the first sign-in and again daily, so certificate rollovers are followed.
    Url(String),
    /// Read at start (for providers whose metadata is not published, or behind a login).
    File(PathBuf),
}

/// How the sign-in request travels to the identity provider. The answer always comes back by
/// HTTP-POST (an assertion is too big for a URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamlBinding {
    Redirect,
    Post,
}

/// A SAML 2.0 identity provider (ADFS, Ping Federate, Entra ID, Okta, Keycloak, …); Portico
/// is the service provider.
#[derive(Debug, Clone, PartialEq)]
pub struct SamlConfig {
    pub common: SsoCommon,
    pub metadata: SamlMetadata,
    /// Portico's entity id at this provider; default `<portal>/_portico/saml/<id>/metadata`.
    pub entity_id: Option<String>,
    pub binding: SamlBinding,
    /// The NameID format asked for (full URN); `None` lets the provider choose.
    pub name_id_format: Option<String>,
    /// The attribute naming the person stably; `None`: the NameID.
    pub subject_attribute: Option<String>,
    /// Attribute names (or friendly names); `None` tries the usual ones (see docs).
    pub email_attribute: Option<String>,
    pub name_attribute: Option<String>,
    pub groups_attribute: Option<String>,
    /// How far apart Portico's and the provider's clocks may be.
    pub clock_skew: Duration,
    pub timeout: Duration,
}

pub(super) fn saml(
    index: usize,
    raw: RawSaml,
    base: &Path,
    seen: &mut HashSet<String>,
    problems: &mut Vec<Problem>,
) -> SamlConfig {
    let key = format!("auth.saml[{index}]");
    let metadata = match (raw.metadata_url, raw.metadata_file) {
        (Some(url), None) => {
            let url = url.trim().to_owned();
            let local = url
                .strip_prefix("http://")
                .is_some_and(|rest| is_loopback_host(url_host(rest)));
            if !url.starts_with("https://") && !local {
                problems.push(Problem::new(
                    format!("{key}.metadata_url"),
                    format!("= \"{url}\" must be an https:// URL (plain http is only accepted for a provider on this machine), e.g. \"https://adfs.example.com/FederationMetadata/2007-06/FederationMetadata.xml\""),
                ));
            }
            SamlMetadata::Url(url)
        }
        (None, Some(file)) => {
            let path = base.join(&file);
            if !path.is_file() {
                problems.push(Problem::new(
                    format!("{key}.metadata_file"),
                    format!(
                        "= \"{}\" is not a readable file; save the provider's metadata XML there, or use metadata_url",
                        path.display()
                    ),
                ));
            }
            SamlMetadata::File(path)
        }
        (Some(_), Some(_)) => {
            problems.push(Problem::new(
                format!("{key}.metadata_file"),
                "and metadata_url are both set; keep one",
            ));
            SamlMetadata::File(PathBuf::new())
        }
        (None, None) => {
            problems.push(Problem::new(
                key.clone(),
                "needs the provider's metadata: metadata_url = \"https://…\" or metadata_file = \"idp.xml\"",
            ));
            SamlMetadata::File(PathBuf::new())
        }
    };
    let binding = match raw.binding.as_deref() {
        None | Some("redirect") => SamlBinding::Redirect,
        Some("post") => SamlBinding::Post,
        Some(other) => {
            problems.push(Problem::new(
                format!("{key}.binding"),
                format!("= \"{other}\" is not a choice; write \"redirect\" or \"post\""),
            ));
            SamlBinding::Redirect
        }
    };
    let name_id_format = raw.name_id_format.map(|f| match f.as_str() {
        "persistent" => "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent".to_owned(),
        "email" | "emailAddress" => {
            "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".to_owned()
        }
        "unspecified" => "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified".to_owned(),
        _ => f,
    });
    if let Some(format) = &name_id_format {
        if !format.starts_with("urn:") {
            problems.push(Problem::new(
                format!("{key}.name_id_format"),
                format!("= \"{format}\" is not a NameID format; write \"persistent\", \"email\", \"unspecified\" or a full urn:oasis:names:tc:SAML URN"),
            ));
        }
    }
    let skew = raw.clock_skew_secs.unwrap_or(120);
    if skew > 900 {
        problems.push(Problem::new(
            format!("{key}.clock_skew_secs"),
            format!("= {skew} is too lenient (an old assertion would be accepted); fix the clocks and use at most 900, e.g. 120"),
        ));
    }
    let nonempty = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    SamlConfig {
        common: common(&key, raw_common!(raw), seen, problems),
        metadata,
        entity_id: nonempty(raw.entity_id),
        binding,
        name_id_format,
        subject_attribute: nonempty(raw.subject_attribute),
        email_attribute: nonempty(raw.email_attribute),
        name_attribute: nonempty(raw.name_attribute),
        groups_attribute: nonempty(raw.groups_attribute),
        clock_skew: Duration::from_secs(skew.min(900)),
        timeout: Duration::from_secs(raw.timeout_secs.unwrap_or(10).max(1)),
    }
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The host of an `ldap://host:port` URL.
fn url_host(rest: &str) -> &str {
    let authority = rest.split('/').next().unwrap_or("");
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("");
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

fn common(
    key: &str,
    raw: RawCommon,
    seen: &mut HashSet<String>,
    problems: &mut Vec<Problem>,
) -> SsoCommon {
    let id_ok = !raw.id.is_empty()
        && raw.id.len() <= 32
        && raw
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !id_ok {
        problems.push(Problem::new(
            format!("{key}.id"),
            format!(
                "= \"{}\" is not an id; use 1-32 lowercase letters, digits and -, e.g. \"corp\"",
                raw.id
            ),
        ));
    } else if !seen.insert(raw.id.clone()) {
        problems.push(Problem::new(
            format!("{key}.id"),
            format!(
                "= \"{}\" is already the id of another provider; each needs its own",
                raw.id
            ),
        ));
    }
    for (i, domain) in raw.allowed_email_domains.iter().enumerate() {
        if domain.is_empty() || domain.contains('@') || domain.contains(char::is_whitespace) {
            problems.push(Problem::new(
                format!("{key}.allowed_email_domains[{i}]"),
                format!("= \"{domain}\" is not a domain; write e.g. \"example.com\""),
            ));
        }
    }
    SsoCommon {
        name: raw
            .name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| raw.id.clone()),
        id: raw.id,
        link_existing_accounts: raw.link_existing_accounts,
        allowed_email_domains: raw
            .allowed_email_domains
            .into_iter()
            .map(|d| d.to_ascii_lowercase())
            .collect(),
        import_groups: raw.import_groups.unwrap_or_else(|| vec!["*".into()]),
        group_map: raw.group_map,
    }
}

pub(super) fn ldap(
    index: usize,
    raw: RawLdap,
    seen: &mut HashSet<String>,
    problems: &mut Vec<Problem>,
) -> LdapConfig {
    let key = format!("auth.ldap[{index}]");
    let common = common(&key, raw_common!(raw), seen, problems);
    let url = raw.url.trim().to_owned();
    let security = if url.starts_with("ldaps://") {
        if raw.starttls {
            problems.push(Problem::new(
                format!("{key}.starttls"),
                "= true with an ldaps:// URL; ldaps is already encrypted, remove starttls",
            ));
        }
        LdapSecurity::Tls
    } else if let Some(rest) = url.strip_prefix("ldap://") {
        if raw.starttls {
            LdapSecurity::StartTls
        } else {
            if !is_loopback_host(url_host(rest)) {
                problems.push(Problem::new(
                    format!("{key}.url"),
                    format!("= \"{url}\" would send passwords unencrypted; use ldaps://, or set starttls = true (plain ldap:// is only allowed to a directory on this machine)"),
                ));
            }
            LdapSecurity::None
        }
    } else {
        problems.push(Problem::new(
            format!("{key}.url"),
            format!("= \"{url}\" is not an LDAP URL; write e.g. \"ldaps://ldap.example.com\""),
        ));
        LdapSecurity::Tls
    };
    let user_filter = raw
        .user_filter
        .unwrap_or_else(|| "(&(objectClass=person)(|(uid={login})(mail={login})))".into());
    if !user_filter.contains("{login}") {
        problems.push(Problem::new(
            format!("{key}.user_filter"),
            "must contain {login}, where what the person typed goes, e.g. \"(mail={login})\"",
        ));
    }
    let groups = match raw.groups.as_deref() {
        None | Some("memberOf") => LdapGroups::MemberOf,
        Some("search") => {
            let base = raw.group_base.clone().unwrap_or_default();
            if base.is_empty() {
                problems.push(Problem::new(
                    format!("{key}.group_base"),
                    "is needed with groups = \"search\"; write where groups live, e.g. \"ou=groups,dc=example,dc=com\"",
                ));
            }
            LdapGroups::Search {
                base,
                filter: raw
                    .group_filter
                    .clone()
                    .unwrap_or_else(|| "(&(objectClass=groupOfNames)(member={dn}))".into()),
                name_attribute: raw
                    .group_name_attribute
                    .clone()
                    .unwrap_or_else(|| "cn".into()),
            }
        }
        Some(other) => {
            problems.push(Problem::new(
                format!("{key}.groups"),
                format!("= \"{other}\" is not a choice; write \"memberOf\" or \"search\""),
            ));
            LdapGroups::MemberOf
        }
    };
    LdapConfig {
        common,
        url,
        security,
        bind_dn: raw.bind_dn.filter(|d| !d.is_empty()),
        user_base: raw.user_base,
        user_filter,
        email_attribute: raw.email_attribute.unwrap_or_else(|| "mail".into()),
        name_attribute: raw.name_attribute.unwrap_or_else(|| "cn".into()),
        groups,
        timeout: Duration::from_secs(raw.timeout_secs.unwrap_or(10).max(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common_with(import: &[&str], map: &[(&str, &str)]) -> SsoCommon {
        SsoCommon {
            id: "corp".into(),
            name: "Corp".into(),
            link_existing_accounts: false,
            allowed_email_domains: vec!["example.com".into()],
            import_groups: import.iter().map(|s| s.to_string()).collect(),
            group_map: map
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    #[test]
    fn groups_are_filtered_by_name_or_prefix_and_renamed_by_the_map() {
        let c = common_with(&["dash-*", "finance"], &[("finance", "money")]);
        assert_eq!(c.portico_group("dash-sales").as_deref(), Some("dash-sales"));
        assert_eq!(c.portico_group("finance").as_deref(), Some("money"));
        assert_eq!(c.portico_group("everyone"), None);
        assert!(c.email_allowed("ada@EXAMPLE.com"));
        assert!(!c.email_allowed("ada@example.com.evil.org"));
    }

    #[test]
    fn the_host_of_an_ldap_url() {
        assert_eq!(url_host("127.0.0.1:389"), "127.0.0.1");
        assert_eq!(url_host("[::1]:389/"), "::1");
        assert_eq!(url_host("ldap.example.com"), "ldap.example.com");
    }
}
