//! Python tools the tests use as independent parties (PyJWT to verify assertions, aiosmtpd as
//! the mail server), each in its own venv under `target/`, made once and reused.

use nix::fcntl::{Flock, FlockArg};
use std::path::PathBuf;
use std::process::Command;

/// The python of a venv `target/portico-test-<name>` where `import <module>` works, installing
/// `requirement` with uv (or pip) the first time. Safe to call from parallel tests.
pub fn python_with(name: &str, module: &str, requirement: &str) -> PathBuf {
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target");
    std::fs::create_dir_all(&target).unwrap();
    let env = target.join(format!("portico-test-{name}"));
    let python = env.join("bin/python");
    let lock_file =
        std::fs::File::create(target.join(format!("portico-test-{name}.lock"))).unwrap();
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusive).expect("lock the venv");
    let works = || {
        Command::new(&python)
            .args(["-c", &format!("import {module}")])
            .status()
            .is_ok_and(|s| s.success())
    };
    if works() {
        return python;
    }
    let uv = Command::new("uv")
        .args(["venv", "--quiet", "--allow-existing"])
        .arg(&env)
        .status();
    if uv.is_ok_and(|s| s.success()) {
        let installed = Command::new("uv")
            .args(["pip", "install", "--quiet", "--python"])
            .arg(&python)
            .arg(requirement)
            .status()
            .unwrap();
        assert!(installed.success(), "uv could not install {requirement}");
    } else {
        assert!(Command::new("python3")
            .args(["-m", "venv"])
            .arg(&env)
            .status()
            .unwrap()
            .success());
        let pip = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", requirement])
            .status()
            .unwrap();
        assert!(pip.success(), "pip could not install {requirement}");
    }
    assert!(
        works(),
        "{requirement} installed but `import {module}` fails"
    );
    python
}
