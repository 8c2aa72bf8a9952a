//! Who may open an app: the `access` rule of each app, and the decision for one identity.

use crate::model::Identity;

/// An app's access rule (`access = …` in its config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not.
    Public,
    /// Anyone signed in.
    SignedIn,
    /// Only these users (lowercased e-mails) and members of these groups.
    Only {
        users: Vec<String>,
        groups: Vec<String>,
    },
}

/// What the policy phase does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Not signed in: send them to sign in.
    SignIn,
    /// Signed in but not allowed: say so.
    Deny,
}

impl Access {
    pub fn decide(&self, identity: &Identity) -> Decision {
        match (self, identity) {
            (Access::Public, _) => Decision::Allow,
            (_, Identity::Anonymous) => Decision::SignIn,
            (Access::SignedIn, Identity::User(_)) => Decision::Allow,
            (Access::Only { users, groups }, Identity::User(user)) => {
                let allowed = user.admin
                    || users.contains(&user.email)
                    || user.groups.iter().any(|g| groups.contains(g));
                if allowed {
                    Decision::Allow
                } else {
                    Decision::Deny
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::User;
    use std::sync::Arc;

    fn user(email: &str, groups: &[&str], admin: bool) -> Identity {
        Identity::User(Arc::new(User {
            id: 1,
            email: email.into(),
            display_name: email.into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            admin,
        }))
    }

    #[test]
    fn decisions() {
        let sales = Access::Only {
            users: vec!["boss@example.com".into()],
            groups: vec!["sales".into()],
        };
        assert_eq!(Access::Public.decide(&Identity::Anonymous), Decision::Allow);
        assert_eq!(
            Access::SignedIn.decide(&Identity::Anonymous),
            Decision::SignIn
        );
        assert_eq!(sales.decide(&Identity::Anonymous), Decision::SignIn);
        assert_eq!(
            Access::SignedIn.decide(&user("a@x.com", &[], false)),
            Decision::Allow
        );
        assert_eq!(
            sales.decide(&user("a@x.com", &["sales"], false)),
            Decision::Allow
        );
        assert_eq!(
            sales.decide(&user("boss@example.com", &[], false)),
            Decision::Allow
        );
        assert_eq!(
            sales.decide(&user("a@x.com", &["ops"], false)),
            Decision::Deny
        );
        assert_eq!(
            sales.decide(&user("root@x.com", &[], true)),
            Decision::Allow,
            "admins open everything"
        );
    }
}
