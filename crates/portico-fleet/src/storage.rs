//! Which volumes a replica gets: the app's data volume, its owner's home (per-user apps)
//! and the team drives the app mounts, each with the folder that backs it where a runtime
//! uses folders (under Portico's data folder, or the operator's `host_path`).

use crate::runtime::{Volume, VolumeKind};
use portico_core::config::{drive_env, VolumesSpec};
use std::path::Path;

/// The volumes of one replica of `app`; `owner` is the user id of a private instance's
/// owner. `data_dir` is Portico's data folder.
pub fn replica_volumes(
    app: &str,
    spec: &VolumesSpec,
    owner: Option<i64>,
    data_dir: &Path,
) -> Vec<Volume> {
    let mut volumes = Vec::new();
    if let Some(mount) = &spec.data {
        let key = format!("data-{app}");
        volumes.push(Volume {
            host_dir: data_dir.join("volumes").join(&key),
            key,
            kind: VolumeKind::AppData,
            operator_folder: false,
            mount: mount.clone(),
            read_only: false,
            env: vec!["PORTICO_DATA".into()],
        });
    }
    if let Some(owner) = owner {
        // One home per person, shared by their instances of every app (as on a desktop).
        volumes.push(Volume {
            key: format!("home-{owner}"),
            kind: VolumeKind::Home,
            host_dir: data_dir.join("homes").join(owner.to_string()),
            operator_folder: false,
            mount: spec.home.clone(),
            read_only: false,
            env: vec!["HOME".into(), "PORTICO_HOME".into()],
        });
    }
    for drive in &spec.drives {
        let key = format!("drive-{}", drive.drive);
        volumes.push(Volume {
            host_dir: drive
                .host_path
                .clone()
                .unwrap_or_else(|| data_dir.join("volumes").join(&key)),
            operator_folder: drive.host_path.is_some(),
            key,
            kind: VolumeKind::Drive,
            mount: drive.path.clone(),
            read_only: drive.read_only,
            env: vec![drive_env(&drive.drive)],
        });
    }
    volumes
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_core::config::DriveMount;

    #[test]
    fn a_private_instance_gets_data_home_and_drives() {
        let spec = VolumesSpec {
            data: Some("/data".into()),
            home: "/home/portico".into(),
            drives: vec![
                DriveMount {
                    drive: "team-finance".into(),
                    host_path: None,
                    path: "/mnt/finance".into(),
                    read_only: true,
                },
                DriveMount {
                    drive: "archive".into(),
                    host_path: Some("/srv/archive".into()),
                    path: "/mnt/archive".into(),
                    read_only: false,
                },
            ],
        };
        let volumes = replica_volumes("sales", &spec, Some(7), Path::new("/var/lib/portico"));
        let keys: Vec<&str> = volumes.iter().map(|v| v.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "data-sales",
                "home-7",
                "drive-team-finance",
                "drive-archive"
            ]
        );
        assert_eq!(
            volumes[0].host_dir,
            Path::new("/var/lib/portico/volumes/data-sales")
        );
        assert_eq!(volumes[1].host_dir, Path::new("/var/lib/portico/homes/7"));
        assert_eq!(volumes[1].env, ["HOME", "PORTICO_HOME"]);
        assert_eq!(volumes[2].env, ["PORTICO_DRIVE_TEAM_FINANCE"]);
        assert!(volumes[2].read_only && !volumes[2].operator_folder);
        assert!(volumes[3].operator_folder);
        assert_eq!(volumes[3].host_dir, Path::new("/srv/archive"));
        // A shared app without volumes gets none.
        assert!(
            replica_volumes("sales", &VolumesSpec::default(), None, Path::new("/x")).is_empty()
        );
    }
}
