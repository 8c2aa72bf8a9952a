//! Sign-in against an LDAP directory (OpenLDAP, Active Directory) with ldap3: the service
//! account finds the one entry matching what the person typed, their groups are read
//! (`memberOf`, or a group search), and binding as that entry with their password proves it.
//! Portico never stores or compares directory passwords.

use super::ExternalProfile;
use ldap3::{ldap_escape, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use portico_core::{LdapConfig, LdapGroups, LdapSecurity};

/// LDAP result code for a wrong password (or an unknown DN).
const INVALID_CREDENTIALS: u32 = 49;

/// What the directory said.
#[derive(Debug)]
pub enum LdapOutcome {
    /// No entry matches (the person may have a local account instead).
    NoSuchUser,
    WrongPassword,
    SignedIn(ExternalProfile),
}

/// Why the directory could not answer: for the log, with the fix. People see a plain "sign-in
/// is unavailable".
#[derive(Debug, thiserror::Error)]
pub enum LdapError {
    #[error("cannot reach the directory {url}: {reason}. Check auth.ldap url, and that the server is up and its certificate trusted")]
    Unreachable { url: String, reason: String },
    #[error("the directory {url} did not answer within {seconds}s; check auth.ldap url or raise timeout_secs")]
    Timeout { url: String, seconds: u64 },
    #[error("the directory refused the service account {dn}: {reason}. Check bind_dn and {env}")]
    ServiceBind {
        dn: String,
        env: String,
        reason: String,
    },
    #[error("{env} is not set, but bind_dn is; set it to the service account's password")]
    NoServicePassword { env: String },
    #[error("searching {base} failed: {reason}. Check user_base, user_filter and the service account's rights")]
    Search { base: String, reason: String },
    #[error(
        "{count} entries under {base} match the sign-in name; make user_filter match one person"
    )]
    Ambiguous { base: String, count: usize },
}

/// One configured directory.
pub struct LdapProvider {
    pub config: LdapConfig,
    service_password: Option<String>,
}

impl LdapProvider {
    /// Reads the service account's password from the environment.
    pub fn new(config: LdapConfig) -> Result<LdapProvider, LdapError> {
        let service_password = match &config.bind_dn {
            Some(_) => Some(std::env::var(config.password_env()).map_err(|_| {
                LdapError::NoServicePassword {
                    env: config.password_env(),
                }
            })?),
            None => None,
        };
        Ok(LdapProvider {
            config,
            service_password,
        })
    }

    /// `ldap:<id>`.
    pub fn provider(&self) -> String {
        format!("ldap:{}", self.config.common.id)
    }

    /// Checks `login` and `password` against the directory, within the configured timeout.
    pub async fn authenticate(
        &self,
        login: &str,
        password: &str,
    ) -> Result<LdapOutcome, LdapError> {
        // An empty password makes a simple bind "unauthenticated", which many directories
        // accept: never let that count as a sign-in.
        if password.is_empty() || login.trim().is_empty() {
            return Ok(LdapOutcome::WrongPassword);
        }
        let timeout = self.config.timeout;
        match tokio::time::timeout(timeout, self.attempt(login.trim(), password)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(LdapError::Timeout {
                url: self.config.url.clone(),
                seconds: timeout.as_secs(),
            }),
        }
    }

    async fn attempt(&self, login: &str, password: &str) -> Result<LdapOutcome, LdapError> {
        let config = &self.config;
        let unreachable = |e: ldap3::LdapError| LdapError::Unreachable {
            url: config.url.clone(),
            reason: e.to_string(),
        };
        let settings = LdapConnSettings::new()
            .set_conn_timeout(config.timeout)
            .set_starttls(config.security == LdapSecurity::StartTls);
        let (connection, mut ldap) = LdapConnAsync::with_settings(settings, &config.url)
            .await
            .map_err(unreachable)?;
        ldap3::drive!(connection);

        if let (Some(dn), Some(pw)) = (&config.bind_dn, &self.service_password) {
            let bound = ldap.simple_bind(dn, pw).await.map_err(unreachable)?;
            if bound.rc != 0 {
                return Err(LdapError::ServiceBind {
                    dn: dn.clone(),
                    env: config.password_env(),
                    reason: bound.to_string(),
                });
            }
        }
        let search_failed = |base: &str, e: ldap3::LdapError| LdapError::Search {
            base: base.to_owned(),
            reason: e.to_string(),
        };
        let filter = config.user_filter.replace("{login}", &ldap_escape(login));
        let attributes = [
            config.email_attribute.as_str(),
            config.name_attribute.as_str(),
            "memberOf",
            "entryUUID",
        ];
        let (entries, _) = ldap
            .search(
                &config.user_base,
                Scope::Subtree,
                &filter,
                attributes.to_vec(),
            )
            .await
            .and_then(|r| r.success())
            .map_err(|e| search_failed(&config.user_base, e))?;
        let entry = match entries.len() {
            0 => return Ok(LdapOutcome::NoSuchUser),
            1 => SearchEntry::construct(entries.into_iter().next().expect("one entry")),
            count => {
                return Err(LdapError::Ambiguous {
                    base: config.user_base.clone(),
                    count,
                })
            }
        };
        let first = |attribute: &str| {
            entry
                .attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(attribute))
                .and_then(|(_, v)| v.first().cloned())
        };
        let email = first(&config.email_attribute).unwrap_or_default();
        let display_name = first(&config.name_attribute);
        // Groups are read as the service account, before binding as the person (who may not
        // be allowed to read them).
        let groups = match &config.groups {
            LdapGroups::MemberOf => entry
                .attrs
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("memberOf"))
                .flat_map(|(_, values)| values.iter().map(|dn| first_rdn_value(dn)))
                .collect(),
            LdapGroups::Search {
                base,
                filter,
                name_attribute,
            } => {
                let filter = filter
                    .replace("{dn}", &ldap_escape(entry.dn.as_str()))
                    .replace("{login}", &ldap_escape(login));
                let (groups, _) = ldap
                    .search(base, Scope::Subtree, &filter, vec![name_attribute.as_str()])
                    .await
                    .and_then(|r| r.success())
                    .map_err(|e| search_failed(base, e))?;
                groups
                    .into_iter()
                    .map(SearchEntry::construct)
                    .filter_map(|g| {
                        g.attrs
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(name_attribute))
                            .and_then(|(_, v)| v.first().cloned())
                    })
                    .collect()
            }
        };
        let bound = ldap
            .simple_bind(&entry.dn, password)
            .await
            .map_err(unreachable)?;
        let _ = ldap.unbind().await;
        match bound.rc {
            0 => {}
            INVALID_CREDENTIALS => return Ok(LdapOutcome::WrongPassword),
            _ => {
                tracing::warn!(
                    "directory {} refused the bind of {}: {bound}",
                    config.url,
                    entry.dn
                );
                return Ok(LdapOutcome::WrongPassword);
            }
        }
        let subject = first("entryUUID").unwrap_or_else(|| entry.dn.to_ascii_lowercase());
        Ok(LdapOutcome::SignedIn(ExternalProfile {
            provider: self.provider(),
            subject,
            email,
            // The directory's own record, kept by its administrators.
            email_verified: true,
            display_name,
            groups,
        }))
    }
}

/// `analysts` from `cn=analysts,ou=groups,dc=example,dc=com` (escaped commas respected).
fn first_rdn_value(dn: &str) -> String {
    let mut value = String::new();
    let mut escaped = false;
    let mut in_value = false;
    for c in dn.chars() {
        match (escaped, c) {
            (true, _) => {
                if in_value {
                    value.push(c);
                }
                escaped = false;
            }
            (false, '\\') => escaped = true,
            (false, ',') | (false, '+') => break,
            (false, '=') if !in_value => in_value = true,
            (false, _) => {
                if in_value {
                    value.push(c);
                }
            }
        }
    }
    value.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::first_rdn_value;

    #[test]
    fn a_group_is_named_by_the_first_value_of_its_dn() {
        assert_eq!(
            first_rdn_value("cn=analysts,ou=groups,dc=example,dc=com"),
            "analysts"
        );
        assert_eq!(
            first_rdn_value("CN=Sales\\, EMEA,OU=Groups,DC=corp"),
            "Sales, EMEA"
        );
        assert_eq!(first_rdn_value("cn=solo"), "solo");
    }
}
