use super::*;
use std::io::Write;

/// One entry of a hand-made archive: raw name bytes (so that `..` and absolute paths can be
/// written, which the tar crate's own setters refuse), its kind, link target and contents.
struct Raw<'a> {
    name: &'a str,
    kind: tar::EntryType,
    link: &'a str,
    data: &'a [u8],
}

fn file<'a>(name: &'a str, data: &'a [u8]) -> Raw<'a> {
    Raw {
        name,
        kind: tar::EntryType::Regular,
        link: "",
        data,
    }
}

fn link<'a>(name: &'a str, kind: tar::EntryType, target: &'a str) -> Raw<'a> {
    Raw {
        name,
        kind,
        link: target,
        data: b"",
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn archive(entries: &[Raw]) -> Vec<u8> {
    let mut tar = Vec::new();
    for entry in entries {
        let mut header = tar::Header::new_old();
        let old = header.as_old_mut();
        old.name[..entry.name.len()].copy_from_slice(entry.name.as_bytes());
        old.linkname[..entry.link.len()].copy_from_slice(entry.link.as_bytes());
        header.set_entry_type(entry.kind);
        header.set_mode(0o644);
        header.set_size(entry.data.len() as u64);
        header.set_cksum();
        tar.extend_from_slice(header.as_bytes());
        tar.extend_from_slice(entry.data);
        tar.resize(tar.len().next_multiple_of(512), 0);
    }
    tar.resize(tar.len() + 1024, 0);
    gzip(&tar)
}

/// Unpacks into `<tmp>/release` and returns the error, checking that nothing was written
/// beside the release folder.
fn refused(entries: &[Raw]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("release");
    std::fs::create_dir(&release).unwrap();
    let error = unpack(archive(entries).as_slice(), &release, &Limits::default())
        .expect_err("the bundle should be refused")
        .to_string();
    let beside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, ["release"], "written outside the release: {error}");
    error
}

#[test]
fn a_plain_bundle_unpacks_with_its_links() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = archive(&[
        file("app.py", b"print('hi')\n"),
        file("./data/sales.csv", b"a,b\n"),
        link("data/latest.csv", tar::EntryType::Symlink, "sales.csv"),
        link("pages/data", tar::EntryType::Symlink, "../data"),
        link("copy.csv", tar::EntryType::Link, "data/sales.csv"),
    ]);
    let unpacked = unpack(bundle.as_slice(), dir.path(), &Limits::default()).unwrap();
    assert_eq!(
        unpacked,
        Unpacked {
            files: 2,
            bytes: 16
        }
    );
    let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();
    assert_eq!(read("data/latest.csv"), "a,b\n");
    assert_eq!(read("pages/data/sales.csv"), "a,b\n");
    assert_eq!(read("copy.csv"), "a,b\n");
}

#[test]
fn paths_out_of_the_folder_are_refused() {
    let error = refused(&[file("../evil.py", b"x")]);
    assert!(
        error.contains("refused \"../evil.py\": its path is absolute or has '..'"),
        "{error}"
    );
    let error = refused(&[file("a/../../evil.py", b"x")]);
    assert!(error.contains("has '..'"), "{error}");
    let error = refused(&[file("/tmp/evil.py", b"x")]);
    assert!(error.contains("refused \"/tmp/evil.py\""), "{error}");
}

#[test]
fn symbolic_links_out_of_the_folder_are_refused() {
    let error = refused(&[link("etc", tar::EntryType::Symlink, "/etc")]);
    assert!(
        error.contains("a symbolic link to /etc, outside the app's folder"),
        "{error}"
    );
    let error = refused(&[link("up", tar::EntryType::Symlink, "sub/../..")]);
    assert!(error.contains("outside the app's folder"), "{error}");
    // A link that stays inside, then a file written through it.
    let error = refused(&[
        link("out", tar::EntryType::Symlink, "."),
        file("out/x", b"x"),
    ]);
    assert!(
        error.contains("refused \"out/x\": it lies inside a symbolic link"),
        "{error}"
    );
    // A chain: `d/x` leads to the folder itself, so `d/x/..` leads out, though the text of
    // `y`'s target alone stays inside.
    let error = refused(&[
        Raw {
            name: "d/",
            kind: tar::EntryType::Directory,
            link: "",
            data: b"",
        },
        link("d/x", tar::EntryType::Symlink, ".."),
        link("y", tar::EntryType::Symlink, "d/x/.."),
    ]);
    assert!(error.contains("a chain of symbolic links"), "{error}");
}

#[test]
fn hard_links_devices_pipes_and_repeats_are_refused() {
    let error = refused(&[link("passwd", tar::EntryType::Link, "/etc/passwd")]);
    assert!(
        error.contains("a hard link to something that is not a file earlier"),
        "{error}"
    );
    let error = refused(&[link("up", tar::EntryType::Link, "../x")]);
    assert!(error.contains("hard link"), "{error}");
    let error = refused(&[Raw {
        name: "null",
        kind: tar::EntryType::Char,
        link: "",
        data: b"",
    }]);
    assert!(error.contains("a device file"), "{error}");
    let error = refused(&[Raw {
        name: "pipe",
        kind: tar::EntryType::Fifo,
        link: "",
        data: b"",
    }]);
    assert!(error.contains("a named pipe"), "{error}");
    let error = refused(&[file("app.py", b"1"), file("./app.py", b"2")]);
    assert!(error.contains("the bundle holds it twice"), "{error}");
}

#[test]
fn archive_bombs_and_garbage_are_refused() {
    // 64 MiB of zeros compress to about 64 KiB.
    let zeros = vec![0u8; 64 << 20];
    let bomb = archive(&[file("zeros.bin", &zeros)]);
    assert!(bomb.len() < 1 << 20, "{}", bomb.len());
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_unpacked_bytes: 8 << 20,
        max_entries: 10,
    };
    let error = unpack(bomb.as_slice(), dir.path(), &limits).unwrap_err();
    assert!(
        matches!(error, BundleError::TooLarge { limit } if limit == 8 << 20),
        "{error}"
    );
    assert!(error.to_string().contains("archive bomb"));

    let many: Vec<String> = (0..20).map(|i| format!("f{i}")).collect();
    let entries: Vec<Raw> = many.iter().map(|n| file(n, b"")).collect();
    let error = unpack(archive(&entries).as_slice(), dir.path(), &limits).unwrap_err();
    assert!(
        matches!(error, BundleError::TooManyEntries { limit: 10 }),
        "{error}"
    );

    let error = unpack(&b"not an archive"[..], dir.path(), &limits).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("not a gzip-compressed tar archive"),
        "{error}"
    );
}

#[test]
fn pack_leaves_out_what_is_ignored_and_gives_the_same_bytes_twice() {
    let dir = tempfile::tempdir().unwrap();
    let write = |p: &str, text: &str| {
        let path = dir.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("app.py", "print('hi')\n");
    write("requirements.txt", "streamlit\n");
    write(".gitignore", "__pycache__/\n*.log\n");
    write(".porticoignore", "notes/\n");
    write("__pycache__/app.cpython-311.pyc", "x");
    write("debug.log", "x");
    write("notes/todo.md", "x");
    write(".git/HEAD", "ref: refs/heads/main\n");
    write("data/sales.csv", "a,b\n");
    std::os::unix::fs::symlink("data/sales.csv", dir.path().join("latest.csv")).unwrap();

    let bundle = pack(dir.path()).unwrap();
    assert_eq!(bundle, pack(dir.path()).unwrap(), "deterministic");
    let out = tempfile::tempdir().unwrap();
    unpack(bundle.as_slice(), out.path(), &Limits::default()).unwrap();
    let mut found: Vec<String> = ignore::WalkBuilder::new(out.path())
        .standard_filters(false)
        .build()
        .map(|e| {
            e.unwrap()
                .path()
                .strip_prefix(out.path())
                .unwrap()
                .display()
                .to_string()
        })
        .filter(|p| !p.is_empty())
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ".gitignore",
            ".porticoignore",
            "app.py",
            "data",
            "data/sales.csv",
            "latest.csv",
            "requirements.txt"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("latest.csv")).unwrap(),
        "a,b\n"
    );
}

#[test]
fn a_pax_global_header_is_metadata_not_a_file() {
    // What `git archive` writes first: the commit id, for the whole archive.
    let dir = tempfile::tempdir().unwrap();
    let bundle = archive(&[
        Raw {
            name: "pax_global_header",
            kind: tar::EntryType::XGlobalHeader,
            link: "",
            data: b"52 comment=0123456789abcdef0123456789abcdef01234567\n",
        },
        file("app.py", b"print('hi')\n"),
    ]);
    let unpacked = unpack(bundle.as_slice(), dir.path(), &Limits::default()).unwrap();
    assert_eq!(unpacked.files, 1);
    assert!(!dir.path().join("pax_global_header").exists());
}
