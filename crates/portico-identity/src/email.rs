//! E-mail addresses as account names: trimmed, lowercased (addresses are unique regardless of
//! case), and checked for the shape of an address, not for deliverability.

/// RFC 5321's limits.
const MAX_EMAIL: usize = 254;
const MAX_LOCAL: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailProblem {
    #[error("an e-mail address is needed")]
    Empty,
    #[error("an e-mail address has at most {MAX_EMAIL} characters")]
    TooLong,
    #[error("\"{0}\" is not an e-mail address; write it as name@example.com")]
    Malformed(String),
}

/// The canonical form of an address, or why it is not one.
pub fn normalize_email(raw: &str) -> Result<String, EmailProblem> {
    let email = raw.trim();
    if email.is_empty() {
        return Err(EmailProblem::Empty);
    }
    if email.len() > MAX_EMAIL {
        return Err(EmailProblem::TooLong);
    }
    let malformed = || EmailProblem::Malformed(email.chars().take(80).collect());
    let (local, domain) = email.rsplit_once('@').ok_or_else(malformed)?;
    let domain_ok = !domain.is_empty()
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    let local_ok = !local.is_empty()
        && local.len() <= MAX_LOCAL
        && !local.contains('@')
        && local.chars().all(|c| {
            c.is_ascii_graphic()
                && !matches!(
                    c,
                    '"' | '(' | ')' | ',' | ':' | ';' | '<' | '>' | '[' | '\\' | ']'
                )
        });
    if !(domain_ok && local_ok) {
        return Err(malformed());
    }
    Ok(email.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_and_lowercased() {
        assert_eq!(
            normalize_email("  Ada.Lovelace@Example.COM ").unwrap(),
            "ada.lovelace@example.com"
        );
        assert_eq!(
            normalize_email("admin@localhost").unwrap(),
            "admin@localhost"
        );
        assert_eq!(normalize_email("a+tag@b.co").unwrap(), "a+tag@b.co");
    }

    #[test]
    fn what_is_not_an_address_is_refused() {
        for bad in [
            "ada",
            "@example.com",
            "ada@",
            "ada@@example.com",
            "ada@exa mple.com",
            "a<b>@x.com",
            "ada@.com",
            "ada@x..com",
        ] {
            assert!(
                matches!(normalize_email(bad), Err(EmailProblem::Malformed(_))),
                "{bad}"
            );
        }
        assert_eq!(normalize_email(" "), Err(EmailProblem::Empty));
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(normalize_email(&long), Err(EmailProblem::TooLong));
    }
}
