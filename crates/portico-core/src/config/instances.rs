//! Per-user instances: `mode = "per-user"` with `[apps.per_user]`, and the size profiles
//! (`[profiles.<name>]`) they are started with.

use super::limits::seconds;
use super::Problem;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// How an app's replicas are shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RawMode {
    /// Everyone shares its replicas (the default).
    #[default]
    Shared,
    /// Each person gets a private instance.
    PerUser,
}

/// `[apps.per_user]` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawPerUser {
    pub idle_timeout_secs: Option<u64>,
    pub max_instances: Option<u32>,
    pub start_wait_secs: Option<u64>,
    #[serde(default)]
    pub profiles: Vec<String>,
    pub admin_access: Option<bool>,
}

/// `[profiles.<name>]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    #[serde(default)]
    pub description: String,
    pub cpus: Option<f64>,
    pub memory_mb: Option<u64>,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// One private instance per person (`mode = "per-user"`).
#[derive(Debug, Clone, PartialEq)]
pub struct PerUserSpec {
    /// An instance that served no request and held no WebSocket this long is stopped; its
    /// owner's home stays.
    pub idle_timeout: Duration,
    /// Instances of this app at once, across everyone.
    pub max_instances: u32,
    /// How long a request waits for its owner's instance to start.
    pub start_wait: Duration,
    /// Sizes in the order written: a person's instance gets the first whose groups they are
    /// in (a profile without groups is for everyone). Empty: no size limits.
    pub profiles: Vec<SizeProfile>,
    /// Whether administrators may open anyone's instance (at
    /// `https://<app host>/_portico/instance/<replica>`, recorded in the audit log).
    pub admin_access: bool,
}

impl Default for PerUserSpec {
    fn default() -> PerUserSpec {
        PerUserSpec {
            idle_timeout: Duration::from_secs(3600),
            max_instances: 20,
            start_wait: Duration::from_secs(120),
            profiles: Vec::new(),
            admin_access: false,
        }
    }
}

impl PerUserSpec {
    /// The profile a member of `groups` gets; `Err` when profiles are set and none is for
    /// them.
    pub fn profile_for(&self, groups: &[String]) -> Result<Option<&SizeProfile>, NoProfile> {
        if self.profiles.is_empty() {
            return Ok(None);
        }
        self.profiles
            .iter()
            .find(|p| p.groups.is_empty() || p.groups.iter().any(|g| groups.contains(g)))
            .map(Some)
            .ok_or(NoProfile)
    }
}

/// Profiles are set for an app and none is for this person's groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoProfile;

/// A size an instance is started with (`[profiles.<name>]`). Runtimes that can enforce
/// limits do; every runtime tells the instance its size (`CPU_LIMIT`, `MEM_LIMIT`).
#[derive(Debug, Clone, PartialEq)]
pub struct SizeProfile {
    pub name: String,
    pub description: String,
    /// CPUs (fractions allowed); `None`: no limit.
    pub cpus: Option<f64>,
    /// Memory in MiB; `None`: no limit.
    pub memory_mb: Option<u64>,
    /// Who gets it; empty: everyone.
    pub groups: Vec<String>,
}

/// Instances one app may run at once.
const MAX_INSTANCES: u32 = 1000;

/// Checks the profiles once (each app refers to them by name).
pub(super) fn profiles(
    raw: BTreeMap<String, RawProfile>,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, SizeProfile> {
    raw.into_iter()
        .map(|(name, p)| {
            let key = |field: &str| format!("profiles.{name}.{field}");
            if let Some(cpus) = p.cpus {
                if !(cpus > 0.0 && cpus <= 1024.0) {
                    problems.push(Problem::new(
                        key("cpus"),
                        format!("= {cpus} is out of range; write the CPUs an instance may use, above 0, e.g. 2 or 0.5"),
                    ));
                }
            }
            if let Some(memory) = p.memory_mb {
                if memory < 64 {
                    problems.push(Problem::new(
                        key("memory_mb"),
                        format!("= {memory} is too little for any dashboard; write the MiB an instance may use, at least 64, e.g. 4096"),
                    ));
                }
            }
            let profile = SizeProfile {
                name: name.clone(),
                description: p.description,
                cpus: p.cpus,
                memory_mb: p.memory_mb,
                groups: p.groups,
            };
            (name, profile)
        })
        .collect()
}

/// `mode` and `[apps.per_user]` of one app (`key` is `apps[i]`).
pub(super) fn per_user(
    key: &str,
    mode: RawMode,
    raw: Option<RawPerUser>,
    has_scale: bool,
    public: bool,
    profiles: &BTreeMap<String, SizeProfile>,
    problems: &mut Vec<Problem>,
) -> Option<PerUserSpec> {
    if mode == RawMode::Shared {
        if raw.is_some() {
            problems.push(Problem::new(
                format!("{key}.per_user"),
                "only applies with mode = \"per-user\"; add that to the app or remove the table",
            ));
        }
        return None;
    }
    if has_scale {
        problems.push(Problem::new(
            format!("{key}.scale"),
            "does not apply with mode = \"per-user\" (each person gets one instance, started when they open it); remove it and use [apps.per_user]",
        ));
    }
    if public {
        problems.push(Problem::new(
            format!("{key}.access"),
            "= \"public\" cannot go with mode = \"per-user\": a private instance needs to know whose it is; use \"signed-in\" or name users and groups",
        ));
    }
    let raw = raw.unwrap_or_default();
    let defaults = PerUserSpec::default();
    let max_instances = raw.max_instances.unwrap_or(defaults.max_instances);
    if !(1..=MAX_INSTANCES).contains(&max_instances) {
        problems.push(Problem::new(
            format!("{key}.per_user.max_instances"),
            format!("= {max_instances} is out of range; write 1 to {MAX_INSTANCES}, e.g. 20"),
        ));
    }
    let chosen = raw
        .profiles
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            let found = profiles.get(name).cloned();
            if found.is_none() {
                let known = if profiles.is_empty() {
                    "no [profiles.<name>] table is defined; add one".to_owned()
                } else {
                    format!(
                        "the profiles are {}",
                        profiles
                            .keys()
                            .map(String::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                problems.push(Problem::new(
                    format!("{key}.per_user.profiles[{i}]"),
                    format!("= \"{name}\" is not a profile; {known}"),
                ));
            }
            found
        })
        .collect();
    Some(PerUserSpec {
        idle_timeout: seconds(
            &format!("{key}.per_user.idle_timeout_secs"),
            raw.idle_timeout_secs,
            defaults.idle_timeout,
            1..=7 * 86_400,
            problems,
        ),
        max_instances: max_instances.clamp(1, MAX_INSTANCES),
        start_wait: seconds(
            &format!("{key}.per_user.start_wait_secs"),
            raw.start_wait_secs,
            defaults.start_wait,
            1..=600,
            problems,
        ),
        profiles: chosen,
        admin_access: raw.admin_access.unwrap_or(defaults.admin_access),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(name: &str, groups: &[&str]) -> SizeProfile {
        SizeProfile {
            name: name.into(),
            description: String::new(),
            cpus: Some(1.0),
            memory_mb: Some(1024),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    #[test]
    fn a_person_gets_the_first_profile_for_one_of_their_groups() {
        let spec = PerUserSpec {
            profiles: vec![profile("large", &["research"]), profile("small", &[])],
            ..PerUserSpec::default()
        };
        let research = ["research".to_owned()];
        assert_eq!(spec.profile_for(&research).unwrap().unwrap().name, "large");
        assert_eq!(spec.profile_for(&[]).unwrap().unwrap().name, "small");
        let only_research = PerUserSpec {
            profiles: vec![profile("large", &["research"])],
            ..PerUserSpec::default()
        };
        assert!(only_research.profile_for(&[]).is_err());
        assert_eq!(PerUserSpec::default().profile_for(&[]), Ok(None));
    }
}
