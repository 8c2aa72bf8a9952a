//! Storage that outlives replicas: an app's own data volume and the team drives several
//! apps share (`[apps.volumes]`, `[drives.<name>]`); per-user apps also get each person's
//! home. Where it lives is the runtime's business (a Docker volume, or a folder under
//! Portico's data folder for the process runtime); the config says where it appears inside
//! a container.

use super::Problem;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `[drives.<name>]` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDrive {
    pub host_path: Option<String>,
}

/// `[apps.volumes]` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawVolumes {
    pub data: Option<String>,
    pub home: Option<String>,
    /// Drive name → mount path, with `:ro` for read-only.
    #[serde(default)]
    pub drives: BTreeMap<String, String>,
}

/// A team drive.
#[derive(Debug, Clone, PartialEq)]
pub struct DriveSpec {
    pub name: String,
    /// A folder on the machine that runs the replicas (an NFS mount, say); `None`: storage
    /// Portico creates (a Docker volume, or `<data>/drives/<name>`).
    pub host_path: Option<PathBuf>,
}

/// Where an app's storage appears inside its containers.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumesSpec {
    /// The app's own data volume, shared by its replicas; `None`: it has none.
    pub data: Option<String>,
    /// Per-user apps: where each person's home is mounted (their `HOME`).
    pub home: String,
    pub drives: Vec<DriveMount>,
}

/// The home of the templates' user: the generated images set `HOME` to it.
pub const DEFAULT_HOME_MOUNT: &str = "/home/portico";

impl Default for VolumesSpec {
    fn default() -> VolumesSpec {
        VolumesSpec {
            data: None,
            home: DEFAULT_HOME_MOUNT.to_owned(),
            drives: Vec::new(),
        }
    }
}

/// A drive as one app mounts it.
#[derive(Debug, Clone, PartialEq)]
pub struct DriveMount {
    pub drive: String,
    /// The drive's `host_path` (copied here so that an app's spec says all it needs).
    pub host_path: Option<PathBuf>,
    pub path: String,
    pub read_only: bool,
}

/// The variable that tells a replica where a drive is: `PORTICO_DRIVE_<NAME>`.
pub fn drive_env(drive: &str) -> String {
    format!(
        "PORTICO_DRIVE_{}",
        drive.to_ascii_uppercase().replace('-', "_")
    )
}

/// Paths a volume must not hide or replace: the system's, and where generated images keep
/// the app, its environment and Portico's runners.
const RESERVED_MOUNTS: &[&str] = &[
    "/bin",
    "/dev",
    "/etc",
    "/lib",
    "/proc",
    "/sbin",
    "/sys",
    "/usr",
    "/app",
    "/opt/portico",
    "/opt/venv",
];

pub(super) fn drives(
    raw: BTreeMap<String, RawDrive>,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, DriveSpec> {
    let mut drives = BTreeMap::new();
    for (name, drive) in raw {
        let key = format!("drives.{name}");
        if !is_drive_name(&name) {
            problems.push(Problem::new(
                &key,
                "is not a drive name; use 1-40 lowercase letters, digits and '-', e.g. [drives.finance]",
            ));
        }
        let host_path = drive.host_path.map(PathBuf::from);
        if let Some(path) = &host_path {
            if !path.is_absolute() || path.components().any(|c| c.as_os_str() == "..") {
                problems.push(Problem::new(
                    format!("{key}.host_path"),
                    format!("= \"{}\" must be an absolute path without '..' on the machine that runs the replicas, e.g. \"/srv/shares/finance\"", path.display()),
                ));
            }
        }
        drives.insert(name.clone(), DriveSpec { name, host_path });
    }
    drives
}

/// `[apps.volumes]` of one app (`key` is `apps[i]`).
pub(super) fn volumes(
    key: &str,
    raw: Option<RawVolumes>,
    per_user: bool,
    drives: &BTreeMap<String, DriveSpec>,
    problems: &mut Vec<Problem>,
) -> VolumesSpec {
    let defaults = VolumesSpec::default();
    let raw = raw.unwrap_or_default();
    let key = |field: &str| format!("{key}.volumes.{field}");
    let mut used: Vec<(String, String)> = Vec::new();
    let mut check = |field: String, path: &str, problems: &mut Vec<Problem>| {
        if let Err(why) = check_mount(path) {
            problems.push(Problem::new(&field, format!("= \"{path}\" {why}")));
        } else if let Some((other, _)) = used.iter().find(|(_, p)| p == path) {
            problems.push(Problem::new(
                &field,
                format!(
                    "= \"{path}\" is also where {other} is mounted; give each volume its own path"
                ),
            ));
        } else {
            used.push((field, path.to_owned()));
        }
    };
    if let Some(path) = &raw.data {
        check(key("data"), path, problems);
    }
    match &raw.home {
        Some(_) if !per_user => problems.push(Problem::new(
            key("home"),
            "is where each person's home is mounted, which only per-user apps have; remove it or set mode = \"per-user\"",
        )),
        Some(path) => check(key("home"), path, problems),
        None if per_user => check(key("home"), &defaults.home, problems),
        None => {}
    }
    let mut mounts = Vec::new();
    for (drive, written) in raw.drives {
        let field = key(&format!("drives.{drive}"));
        let Some(declared_drive) = drives.get(&drive) else {
            let declared: Vec<&str> = drives.keys().map(String::as_str).collect();
            problems.push(Problem::new(
                &field,
                if declared.is_empty() {
                    format!("is not a declared drive; add a [drives.{drive}] table")
                } else {
                    format!(
                        "is not a declared drive (declared: {}); add a [drives.{drive}] table or correct the name",
                        declared.join(", ")
                    )
                },
            ));
            continue;
        };
        let (path, read_only) = match written.strip_suffix(":ro") {
            Some(path) => (path.to_owned(), true),
            None => (written.clone(), false),
        };
        check(field, &path, problems);
        mounts.push(DriveMount {
            host_path: declared_drive.host_path.clone(),
            drive,
            path,
            read_only,
        });
    }
    VolumesSpec {
        data: raw.data,
        home: raw.home.unwrap_or(defaults.home),
        drives: mounts,
    }
}

fn is_drive_name(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// A path inside a container a volume may be mounted at.
fn check_mount(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err("must be an absolute path inside the container, e.g. \"/data\"".into());
    }
    if path
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == ':' || c == ',')
    {
        return Err(
            "may not contain spaces, ':' or ','; choose a plain path like \"/data\"".into(),
        );
    }
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.iter().any(|p| *p == "." || *p == "..") {
        return Err("may not contain '.' or '..'; write the path itself".into());
    }
    if parts.is_empty() {
        return Err("would hide the whole file system; choose a folder, e.g. \"/data\"".into());
    }
    let normal = format!("/{}", parts.join("/"));
    for reserved in RESERVED_MOUNTS {
        let inside = normal
            .strip_prefix(reserved)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if inside {
            return Err(format!(
                "would hide {reserved}, which the system or the app's image needs; choose another folder, e.g. \"/data\""
            ));
        }
    }
    if normal != path {
        return Err(format!("is not written plainly; write \"{normal}\""));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_checked() {
        for good in ["/data", "/home/portico", "/mnt/finance", "/srv/a-b_c.d"] {
            assert_eq!(check_mount(good), Ok(()), "{good}");
        }
        for bad in [
            "data",
            "/",
            "/data/../etc",
            "/proc/x",
            "/app",
            "/app/cache",
            "/opt/venv",
            "/usr",
            "/a b",
            "/a:b",
            "//data",
            "/data/",
        ] {
            assert!(check_mount(bad).is_err(), "{bad}");
        }
        // A prefix of a reserved path's name is not inside it.
        assert_eq!(check_mount("/apps"), Ok(()));
    }

    #[test]
    fn drive_names_become_variables() {
        assert_eq!(drive_env("team-finance"), "PORTICO_DRIVE_TEAM_FINANCE");
        assert!(is_drive_name("finance-2"));
        assert!(!is_drive_name("Finance"));
        assert!(!is_drive_name("-x"));
        assert!(!is_drive_name(""));
    }
}
