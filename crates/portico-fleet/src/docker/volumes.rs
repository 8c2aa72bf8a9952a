//! Volumes of container replicas. Each of Portico's own volumes (an app's data, a person's
//! home, a team drive without `host_path`) is a named Docker volume, `portico-<instance
//! tag>-<key>`, created on first use and never removed by Portico: it outlives containers,
//! Portico's restarts and even the app's removal from the config (an operator deletes it
//! with `docker volume rm`). A drive with a `host_path` is that folder, mounted.
//!
//! A new Docker volume's top folder belongs to root, so a dashboard running as another user
//! could not write to it. Before each container starts, Portico gives the top folders to
//! the user the container runs as (its `user`, or the image's), by copying folder entries
//! with that owner and the volume's mode over them through the daemon's archive API, into a
//! helper container of the same image and mounts that is created, never started, and
//! removed (the daemon refuses such copies into a read-only container). Nothing runs
//! inside the image, which may not even have a shell.

use super::{DockerRuntime, LABEL_APP, LABEL_INSTANCE};
use crate::runtime::{StartError, Volume, VolumeKind};
use bollard::models::{Mount, MountType, VolumeCreateRequest};
use bollard::query_parameters::{DownloadFromContainerOptions, UploadToContainerOptions};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::io::Read;

/// The label that names what a Portico volume is (`data-sales`, `home-7`, `drive-finance`).
pub const LABEL_VOLUME: &str = "portico.volume";

/// The most of a user or group file read from an image.
const MAX_ACCOUNTS_FILE: usize = 1 << 20;

/// A replica's volumes, ready to mount.
pub(super) struct Planned {
    pub mounts: Vec<Mount>,
    /// Volumes whose top folder is to be given to the container's user, with its mode.
    to_own: Vec<(Mount, u32)>,
}

impl DockerRuntime {
    /// The Docker volume behind one of Portico's volumes.
    pub fn volume_name(&self, key: &str) -> String {
        format!("portico-{}-{key}", self.instance_tag)
    }

    /// Creates the replica's Docker volumes that do not exist yet, and says how to mount
    /// them and which top folders need their owner set.
    pub(super) async fn plan_volumes(
        &self,
        app: &str,
        volumes: &[Volume],
    ) -> Result<Planned, StartError> {
        let mut planned = Planned {
            mounts: Vec::new(),
            to_own: Vec::new(),
        };
        for volume in volumes {
            if volume.operator_folder {
                planned.mounts.push(Mount {
                    target: Some(volume.mount.clone()),
                    source: Some(volume.host_dir.to_string_lossy().into_owned()),
                    typ: Some(MountType::BIND),
                    read_only: Some(volume.read_only),
                    ..Default::default()
                });
                continue;
            }
            let name = self.volume_name(&volume.key);
            self.ensure_volume(&name, app, volume).await?;
            let mount = Mount {
                target: Some(volume.mount.clone()),
                source: Some(name),
                typ: Some(MountType::VOLUME),
                read_only: Some(volume.read_only),
                ..Default::default()
            };
            // Every time: the user the replicas run as may have changed, and an earlier
            // attempt may have been cut short. Not where this app only reads (a drive
            // another app writes).
            if !volume.read_only {
                planned.to_own.push((mount.clone(), volume.mode()));
            }
            planned.mounts.push(mount);
        }
        Ok(planned)
    }

    /// Creates the named volume unless it exists.
    async fn ensure_volume(
        &self,
        name: &str,
        app: &str,
        volume: &Volume,
    ) -> Result<(), StartError> {
        let docker = self.docker().await?;
        match docker.inspect_volume(name).await {
            Ok(_) => return Ok(()),
            Err(e) => match self.client.fail(e).await {
                e if e.is_not_found() => {}
                e => return Err(super::start_error(e)),
            },
        }
        let mut labels = HashMap::from([
            (LABEL_INSTANCE.to_owned(), self.instance.clone()),
            (LABEL_VOLUME.to_owned(), volume.key.clone()),
        ]);
        if volume.kind == VolumeKind::AppData {
            labels.insert(LABEL_APP.to_owned(), app.to_owned());
        }
        let request = VolumeCreateRequest {
            name: Some(name.to_owned()),
            driver: Some("local".into()),
            labels: Some(labels),
            ..Default::default()
        };
        // Creating a volume that exists (another replica raced us) is not an error.
        match docker.create_volume(request).await {
            Ok(_) => Ok(()),
            Err(e) => Err(super::start_error(self.client.fail(e).await)),
        }
    }

    /// Gives the volumes' top folders to the user the replica `container` will run as
    /// (`user`, or the image's), through a helper container.
    pub(super) async fn own_volumes(
        &self,
        container: &str,
        image: &str,
        user: Option<&str>,
        planned: &Planned,
    ) -> Result<(), StartError> {
        if planned.to_own.is_empty() {
            return Ok(());
        }
        let docker = self.docker().await?;
        let helper = format!("{container}-volumes");
        let body = bollard::models::ContainerCreateBody {
            image: Some(image.to_owned()),
            // Never started: any command will do, and the image may have none.
            cmd: Some(vec!["/portico-never-runs".to_owned()]),
            user: user.map(str::to_owned),
            network_disabled: Some(true),
            // Removed with the orphans should Portico die before removing it.
            labels: Some(HashMap::from([(
                LABEL_INSTANCE.to_owned(),
                self.instance.clone(),
            )])),
            host_config: Some(bollard::models::HostConfig {
                mounts: Some(planned.to_own.iter().map(|(m, _)| m.clone()).collect()),
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = bollard::query_parameters::CreateContainerOptions {
            name: Some(helper.clone()),
            ..Default::default()
        };
        // One left by an attempt that was cut short.
        let _ = docker.remove_container(&helper, Some(super::force())).await;
        if let Err(e) = docker.create_container(Some(options), body).await {
            return Err(self.create_error(e, image).await);
        }
        let folders: Vec<(&str, u32)> = planned
            .to_own
            .iter()
            .map(|(mount, mode)| (mount.target.as_deref().unwrap_or_default(), *mode))
            .collect();
        let owned = self.own_in(&helper, &folders).await;
        let _ = docker.remove_container(&helper, Some(super::force())).await;
        owned.map_err(StartError::Prepare)
    }

    /// Copies the top folders' entries into the (created, never started) `helper`.
    async fn own_in(&self, helper: &str, folders: &[(&str, u32)]) -> Result<(), String> {
        let docker = self.client.get().await.map_err(|e| e.to_string())?;
        let inspected = docker
            .inspect_container(helper, None)
            .await
            .map_err(|e| format!("cannot inspect the volumes' helper container: {e}"))?;
        // The container's config has the image's user unless the app's config named one.
        let user = inspected.config.and_then(|c| c.user).unwrap_or_default();
        let accounts = Accounts {
            passwd: self.read_file(helper, "/etc/passwd").await,
            group: self.read_file(helper, "/etc/group").await,
        };
        let (uid, gid) = accounts.resolve(&user)?;
        let archive = folder_entries(folders, uid, gid)
            .map_err(|e| format!("cannot make the volume folders' archive: {e}"))?;
        let options = UploadToContainerOptions {
            path: "/".into(),
            ..Default::default()
        };
        docker
            .upload_to_container(helper, Some(options), bollard::body_full(archive.into()))
            .await
            .map_err(|e| format!("cannot give the volumes to user {uid}:{gid}: {e}"))
    }

    /// A small file of the container's image; empty when it has none (a `scratch` image).
    async fn read_file(&self, container: &str, path: &str) -> String {
        let Ok(docker) = self.client.get().await else {
            return String::new();
        };
        let options = DownloadFromContainerOptions { path: path.into() };
        let mut stream = docker.download_from_container(container, Some(options));
        let mut archive = Vec::new();
        while let Some(Ok(chunk)) = stream.next().await {
            archive.extend_from_slice(&chunk);
            if archive.len() > MAX_ACCOUNTS_FILE {
                return String::new();
            }
        }
        let mut text = String::new();
        if let Ok(mut entries) = tar::Archive::new(archive.as_slice()).entries() {
            if let Some(Ok(mut entry)) = entries.next() {
                let _ = entry.read_to_string(&mut text);
            }
        }
        text
    }
}

/// An image's `/etc/passwd` and `/etc/group`, to turn a `user` setting into ids the way
/// Docker does.
struct Accounts {
    passwd: String,
    group: String,
}

impl Accounts {
    /// `""` (root), `"1000"`, `"1000:1000"`, `"shiny"`, `"shiny:staff"` → (uid, gid). A user
    /// given without a group gets their primary group, or group 0 when the image does not
    /// list them (as Docker does).
    fn resolve(&self, user: &str) -> Result<(u32, u32), String> {
        if user.is_empty() {
            return Ok((0, 0));
        }
        let (name, group) = match user.split_once(':') {
            Some((name, group)) => (name, Some(group)),
            None => (user, None),
        };
        let entry = |file: &str, wanted: &str, by_id: bool| -> Option<(u32, u32)> {
            file.lines().find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                let id = fields.get(2)?.parse().ok()?;
                let matches = if by_id {
                    wanted.parse::<u32>().ok() == Some(id)
                } else {
                    fields[0] == wanted
                };
                matches.then(|| (id, fields.get(3).and_then(|g| g.parse().ok()).unwrap_or(0)))
            })
        };
        let (uid, primary) = match name.parse::<u32>() {
            Ok(uid) => (uid, entry(&self.passwd, name, true).map_or(0, |(_, g)| g)),
            Err(_) => entry(&self.passwd, name, false).ok_or_else(|| {
                format!("the image has no user `{name}` in /etc/passwd, so its volumes cannot be given to it; set [apps.container] user to a user id, e.g. \"1000\"")
            })?,
        };
        let gid = match group {
            None => primary,
            Some(group) => match group.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => entry(&self.group, group, false)
                    .map(|(gid, _)| gid)
                    .ok_or_else(|| {
                        format!("the image has no group `{group}` in /etc/group; set [apps.container] user with a group id, e.g. \"1000:1000\"")
                    })?,
            },
        };
        Ok((uid, gid))
    }
}

/// A tar archive of folder entries (the mount paths, relative to `/`) with the owner and
/// mode each volume's top folder is to have.
fn folder_entries(folders: &[(&str, u32)], uid: u32, gid: u32) -> std::io::Result<Vec<u8>> {
    let mut archive = tar::Builder::new(Vec::new());
    for (path, mode) in folders {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_uid(u64::from(uid));
        header.set_gid(u64::from(gid));
        header.set_mode(*mode);
        header.set_size(0);
        archive.append_data(&mut header, path.trim_start_matches('/'), std::io::empty())?;
    }
    archive.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nshiny:x:999:998::/home/shiny:/bin/sh\nportico:x:1000:1000::/home/portico:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:\nshiny:x:998:\n";

    #[test]
    fn users_resolve_the_way_docker_resolves_them() {
        let accounts = Accounts {
            passwd: PASSWD.into(),
            group: GROUP.into(),
        };
        assert_eq!(accounts.resolve(""), Ok((0, 0)));
        assert_eq!(accounts.resolve("1000"), Ok((1000, 1000)));
        assert_eq!(accounts.resolve("1234"), Ok((1234, 0)));
        assert_eq!(accounts.resolve("1000:50"), Ok((1000, 50)));
        assert_eq!(accounts.resolve("shiny"), Ok((999, 998)));
        assert_eq!(accounts.resolve("shiny:staff"), Ok((999, 50)));
        assert!(accounts
            .resolve("nobody")
            .unwrap_err()
            .contains("no user `nobody`"));
        assert!(accounts
            .resolve("shiny:wheel")
            .unwrap_err()
            .contains("no group `wheel`"));
        // A scratch image has no user files: ids still work.
        let none = Accounts {
            passwd: String::new(),
            group: String::new(),
        };
        assert_eq!(none.resolve("1000:1000"), Ok((1000, 1000)));
    }

    #[test]
    fn folder_entries_carry_owner_and_mode() {
        let bytes =
            folder_entries(&[("/data", 0o750), ("/home/portico", 0o700)], 1000, 1000).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let seen: Vec<(String, u64, u32)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.uid().unwrap(),
                    h.mode().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("data".to_owned(), 1000, 0o750),
                ("home/portico".to_owned(), 1000, 0o700)
            ]
        );
    }
}
