//! Source bundles: what `portico deploy` uploads (a gzip-compressed tar of the app's folder)
//! and how Portico unpacks one into a release's folder.
//!
//! An upload is untrusted input: unpacking refuses, naming the entry, anything that could
//! write outside the release folder or fill the disk — absolute paths, `..`, entries inside
//! a symbolic link, symbolic links that lead out of the folder, hard links to anything but a
//! file already unpacked, device files and named pipes, an entry written twice, and more
//! bytes or entries than the limits (an archive bomb). The caller unpacks into a fresh,
//! empty folder and throws it away on error, so a refused bundle leaves nothing behind.

use flate2::read::GzDecoder;
use std::collections::HashSet;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// How big a bundle may be once unpacked.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of the uncompressed archive (file contents and headers).
    pub max_unpacked_bytes: u64,
    /// Files, folders and links.
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_unpacked_bytes: 1 << 30,
            max_entries: 100_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("the upload is not a gzip-compressed tar archive ({0}); upload the .tar.gz that `portico deploy` makes of the app's folder")]
    Format(String),
    #[error("refused \"{entry}\": {why}; nothing was deployed")]
    Refused { entry: String, why: String },
    #[error("the bundle unpacks to more than {limit} bytes (an archive bomb, or an app folder with data that belongs elsewhere); nothing was deployed")]
    TooLarge { limit: u64 },
    #[error("the bundle holds more than {limit} files; nothing was deployed")]
    TooManyEntries { limit: u64 },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// What an unpacked bundle held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unpacked {
    pub files: u64,
    pub bytes: u64,
}

/// Unpacks a gzip-compressed tar archive into `dest`, an empty folder.
pub fn unpack(archive: impl Read, dest: &Path, limits: &Limits) -> Result<Unpacked, BundleError> {
    let exceeded = Arc::new(AtomicBool::new(false));
    let limited = Limited {
        inner: GzDecoder::new(archive),
        left: limits.max_unpacked_bytes,
        exceeded: exceeded.clone(),
    };
    let mut unpacker = Unpacker {
        dest,
        links: HashSet::new(),
        files: HashSet::new(),
        seen: HashSet::new(),
        summary: Unpacked { files: 0, bytes: 0 },
    };
    let too_large = || BundleError::TooLarge {
        limit: limits.max_unpacked_bytes,
    };
    let mut tar = tar::Archive::new(limited);
    let entries = tar
        .entries()
        .map_err(|e| BundleError::Format(e.to_string()))?;
    let mut count = 0u64;
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(_) if exceeded.load(Ordering::Relaxed) => return Err(too_large()),
            Err(e) => return Err(BundleError::Format(e.to_string())),
        };
        count += 1;
        if count > limits.max_entries {
            return Err(BundleError::TooManyEntries {
                limit: limits.max_entries,
            });
        }
        match unpacker.entry(entry) {
            Err(BundleError::Write { .. }) if exceeded.load(Ordering::Relaxed) => {
                return Err(too_large())
            }
            other => other?,
        }
    }
    if exceeded.load(Ordering::Relaxed) {
        return Err(too_large());
    }
    unpacker.check_links()?;
    Ok(unpacker.summary)
}

struct Unpacker<'a> {
    dest: &'a Path,
    /// Symbolic links unpacked so far (relative paths): nothing may be unpacked inside one.
    links: HashSet<PathBuf>,
    /// Regular files unpacked so far: the only things a hard link may point at.
    files: HashSet<PathBuf>,
    /// Every path unpacked, to refuse one written twice.
    seen: HashSet<PathBuf>,
    summary: Unpacked,
}

impl Unpacker<'_> {
    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), BundleError> {
        // A pax global header is metadata for the whole archive (`git archive` puts the
        // commit id there), not a file.
        if entry.header().entry_type() == tar::EntryType::XGlobalHeader {
            return Ok(());
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let refuse = |why: &str| BundleError::Refused {
            entry: raw.clone(),
            why: why.to_owned(),
        };
        let Some(relative) = entry_path(Path::new(&raw)) else {
            return Err(refuse(
                "its path is absolute or has '..' in it; bundles hold plain paths inside the app's folder",
            ));
        };
        if relative.as_os_str().is_empty() {
            return Ok(()); // "./", the folder itself
        }
        if relative.ancestors().skip(1).any(|a| self.links.contains(a)) {
            return Err(refuse(
                "it lies inside a symbolic link, which could lead anywhere",
            ));
        }
        let kind = entry.header().entry_type();
        if !kind.is_dir() && !self.seen.insert(relative.clone()) {
            return Err(refuse("the bundle holds it twice"));
        }
        let target = self.dest.join(&relative);
        let write_error = |source: io::Error| BundleError::Write {
            path: target.clone(),
            source,
        };
        match kind {
            tar::EntryType::Directory => {
                create_dirs(&target).map_err(write_error)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = target.parent() {
                    create_dirs(parent).map_err(write_error)?;
                }
                let executable = entry.header().mode().is_ok_and(|m| m & 0o111 != 0);
                let mut file = create_file(&target, executable).map_err(write_error)?;
                let bytes = io::copy(&mut entry, &mut file).map_err(write_error)?;
                self.summary.files += 1;
                self.summary.bytes += bytes;
                self.files.insert(relative);
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .ok()
                    .flatten()
                    .ok_or_else(|| refuse("a symbolic link without a target"))?;
                let parent = relative.parent().unwrap_or(Path::new(""));
                if link.is_absolute() || inside(&parent.join(&link)).is_none() {
                    return Err(refuse(&format!(
                        "a symbolic link to {}, outside the app's folder",
                        link.display()
                    )));
                }
                if let Some(parent) = target.parent() {
                    create_dirs(parent).map_err(write_error)?;
                }
                std::os::unix::fs::symlink(&link, &target).map_err(write_error)?;
                self.links.insert(relative);
            }
            tar::EntryType::Link => {
                let link = entry.link_name().ok().flatten();
                let source = link.as_deref().and_then(entry_path);
                let Some(source) = source.filter(|s| self.files.contains(s)) else {
                    return Err(refuse(
                        "a hard link to something that is not a file earlier in the bundle",
                    ));
                };
                if let Some(parent) = target.parent() {
                    create_dirs(parent).map_err(write_error)?;
                }
                std::fs::hard_link(self.dest.join(source), &target).map_err(write_error)?;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(refuse("a device file; an app's folder holds none"));
            }
            tar::EntryType::Fifo => {
                return Err(refuse("a named pipe; an app's folder holds none"));
            }
            _ => return Err(refuse("a kind of entry bundles may not hold")),
        }
        Ok(())
    }

    /// Symbolic links were checked one by one; a chain of them (`a -> b/..` where `b` is
    /// itself a link) could still lead out. Each link that resolves must resolve inside.
    fn check_links(&self) -> Result<(), BundleError> {
        let Ok(root) = self.dest.canonicalize() else {
            return Ok(());
        };
        for link in &self.links {
            if let Ok(resolved) = self.dest.join(link).canonicalize() {
                if !resolved.starts_with(&root) {
                    return Err(BundleError::Refused {
                        entry: link.display().to_string(),
                        why: "a chain of symbolic links that leads outside the app's folder".into(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// An entry's path made plain (`./a/b` → `a/b`), or `None` when it is absolute or has a
/// `..` in it.
fn entry_path(path: &Path) -> Option<PathBuf> {
    let mut plain = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => plain.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(plain)
}

/// Where a link's target leads, relative to the folder (`a/../b` → `b`), or `None` when it
/// is absolute or climbs above the folder.
fn inside(path: &Path) -> Option<PathBuf> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().collect())
}

fn create_dirs(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
}

/// A new file (never through an existing path, so never through a link), readable by all,
/// executable when the archive says so; owners and other permission bits are not taken
/// from the archive.
fn create_file(path: &Path, executable: bool) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if executable { 0o755 } else { 0o644 })
        .open(path)
}

/// Reads at most `left` bytes from `inner`, then fails (and says so in `exceeded`).
struct Limited<R> {
    inner: R,
    left: u64,
    exceeded: Arc<AtomicBool>,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        match self.left.checked_sub(read as u64) {
            Some(left) => {
                self.left = left;
                Ok(read)
            }
            None => {
                self.exceeded.store(true, Ordering::Relaxed);
                Err(io::Error::other("the bundle is larger than allowed"))
            }
        }
    }
}

/// Packs an app's folder the way `portico deploy` uploads it: a gzip-compressed tar,
/// leaving out `.git` and what `.gitignore` and `.porticoignore` exclude, in a fixed order
/// without times or owners (the same folder gives the same bytes).
pub fn pack(dir: &Path) -> io::Result<Vec<u8>> {
    let walk = ignore::WalkBuilder::new(dir)
        .hidden(false)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .ignore(false)
        .parents(false)
        .add_custom_ignore_filename(".porticoignore")
        .follow_links(false)
        .filter_entry(|e| e.file_name() != ".git")
        .sort_by_file_name(|a, b| a.cmp(b))
        .build();
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut archive = tar::Builder::new(encoder);
    for item in walk {
        let item = item.map_err(io::Error::other)?;
        let path = item.path();
        let Ok(relative) = path.strip_prefix(dir) else {
            continue;
        };
        if relative.as_os_str().is_empty() {
            continue;
        }
        let metadata = std::fs::symlink_metadata(path)?;
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        if metadata.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            archive.append_data(&mut header, relative, io::empty())?;
        } else if metadata.file_type().is_symlink() {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            archive.append_link(&mut header, relative, std::fs::read_link(path)?)?;
        } else if metadata.is_file() {
            use std::os::unix::fs::PermissionsExt;
            let executable = metadata.permissions().mode() & 0o111 != 0;
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(if executable { 0o755 } else { 0o644 });
            header.set_size(metadata.len());
            archive.append_data(&mut header, relative, std::fs::File::open(path)?)?;
        }
    }
    archive.into_inner()?.finish()
}

#[cfg(test)]
mod tests;
