//! Test certificates made by openssl: a CA (`ca.pem`, `ca.key`) and a server certificate it
//! signed (`cert.pem`, `key.pem`), for the test servers that speak TLS (slapd, Pebble).

use std::path::Path;
use std::process::{Command, Stdio};

/// Writes the four files into `dir`; `subject_alt_names` as openssl writes them, e.g.
/// `"DNS:localhost,IP:127.0.0.1"`.
pub fn make_server_certificate(dir: &Path, subject_alt_names: &str) {
    std::fs::write(
        dir.join("server.ext"),
        format!("subjectAltName={subject_alt_names}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=Portico test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=Portico test server",
            "-keyout",
            "key.pem",
            "-out",
            "server.csr",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "server.ext",
            "-out",
            "cert.pem",
        ],
    ];
    for args in steps {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .expect("openssl");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
