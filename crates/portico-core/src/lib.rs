//! Portico's shared vocabulary: the configuration schema and its validation, the domain
//! model (frameworks, identities, replica states) and the route table that the control path
//! publishes and the request path reads.
//!
//! Everything here is plain data with no I/O beyond reading the config file, so every other
//! crate can depend on it.

pub mod access;
pub mod config;
pub mod errors;
pub mod firewall;
pub mod model;
pub mod routes;
pub mod urls;

pub use access::{Access, Decision};
pub use config::{
    AcmeChallenge, AcmeConfig, AppSpec, CertificateFiles, Config, ConfigError, LdapConfig,
    LdapGroups, LdapSecurity, LimitsConfig, MfaPolicy, OidcConfig, PerUserSpec, Problem,
    SamlBinding, SamlConfig, SamlMetadata, ScaleSpec, SizeProfile, SmtpConfig, SmtpSecurity,
    SsoCommon, TlsConfig, TlsSource,
};
pub use firewall::{FirewallConfig, IpRules};
pub use model::{AppStatus, ClientAddr, Framework, Identity, MountStyle, ReplicaState, User};
pub use routes::{
    AppRoute, Demand, Endpoint, LiveApp, LiveReplica, LoadGuard, RecentClients, ReplicaLoad,
    RouteTable, SharedRoutes,
};
pub use urls::PublicUrls;
