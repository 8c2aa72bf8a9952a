//! Who people are: accounts with argon2id passwords, groups, the admin bootstrap and the
//! audit trail of every change. Sessions, MFA, sign-in pages and SSO build on this.

pub mod accounts;
pub mod assertion;
pub mod audit;
pub mod bootstrap;
pub mod email;
pub mod handoff;
pub mod links;
pub mod mail;
pub mod mfa;
pub mod password;
pub mod pending;
pub mod secrets;
pub mod sessions;
pub mod sso;
pub mod throttle;
pub mod tokens;
pub mod web;

mod common_passwords;

pub use accounts::{Accounts, IdentityError, NewUser};
pub use assertion::AssertionSigner;
pub use audit::AuditSink;
pub use bootstrap::{ensure_admin, Bootstrap};
pub use handoff::Handoffs;
pub use links::{LinkPurpose, Links};
pub use mail::Mailer;
pub use mfa::Mfa;
pub use pending::PendingSignIns;
pub use secrets::SecretBox;
pub use sessions::{SessionPolicy, Sessions};
pub use throttle::Throttle;
pub use tokens::{ApiTokens, Scope, TokenHolder, TokenProblem};
