//! A real LDAP directory for tests: Debian's slapd with a throwaway database on a loopback
//! port, the memberof overlay (so entries carry `memberOf`, as in Active Directory), and
//! entries managed with Debian's ldap-utils (`ldapadd`, `ldapmodify`).

use crate::{free_port, wait_for_port};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BASE: &str = "dc=example,dc=com";
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=com";
const ADMIN_PASSWORD: &str = "directory-admin-secret";
/// The read-only service account Portico binds as.
pub const SERVICE_DN: &str = "cn=portico,ou=services,dc=example,dc=com";
pub const SERVICE_PASSWORD: &str = "portico-service-secret";

pub struct Directory {
    child: Child,
    pub port: u16,
    /// With `start_with_tls`: the `ldaps://` port, and the certificate to trust.
    pub tls: Option<(u16, std::path::PathBuf)>,
    _dir: tempfile::TempDir,
}

impl Directory {
    pub async fn start() -> Directory {
        Directory::launch(false).await
    }

    /// Also serves `ldaps://` and StartTLS with a certificate for 127.0.0.1 from a test CA
    /// (made with openssl); `tls.1` is the CA's file, which Portico trusts through
    /// `SSL_CERT_FILE`.
    pub async fn start_with_tls() -> Directory {
        Directory::launch(true).await
    }

    async fn launch(tls: bool) -> Directory {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("db")).unwrap();
        let config = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             pidfile {dir}/slapd.pid\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             moduleload memberof\n\
             database mdb\n\
             suffix \"{BASE}\"\n\
             rootdn \"{ADMIN_DN}\"\n\
             rootpw {ADMIN_PASSWORD}\n\
             directory {dir}/db\n\
             overlay memberof\n\
             access to attrs=userPassword by anonymous auth by * none\n\
             access to * by dn.exact=\"{SERVICE_DN}\" read by self read by * none\n",
            dir = dir.path().display()
        );
        let mut config = config;
        let mut urls = vec![];
        let port = free_port();
        urls.push(format!("ldap://127.0.0.1:{port}/"));
        let tls = if tls {
            let cert = dir.path().join("cert.pem");
            let key = dir.path().join("key.pem");
            let ca = dir.path().join("ca.pem");
            crate::pki::make_server_certificate(dir.path(), "IP:127.0.0.1");
            // Global TLS settings belong before the database section.
            config = config.replacen(
                "database mdb",
                &format!(
                    "TLSCertificateFile {}\nTLSCertificateKeyFile {}\ndatabase mdb",
                    cert.display(),
                    key.display()
                ),
                1,
            );
            let tls_port = free_port();
            urls.push(format!("ldaps://127.0.0.1:{tls_port}/"));
            Some((tls_port, ca))
        } else {
            None
        };
        let config_path = dir.path().join("slapd.conf");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new("/usr/sbin/slapd")
            .arg("-f")
            .arg(&config_path)
            .args(["-h", &urls.join(" "), "-d", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("slapd (Debian package slapd; scripts/install-deps --tests installs it)");
        wait_for_port("slapd", port, Duration::from_secs(20)).await;
        let directory = Directory {
            child,
            port,
            tls,
            _dir: dir,
        };
        directory.apply(
            "ldapadd",
            &format!(
                "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
                 dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n\n\
                 dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n\n\
                 dn: ou=services,{BASE}\nobjectClass: organizationalUnit\nou: services\n\n\
                 dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: portico\nuserPassword: {SERVICE_PASSWORD}\n"
            ),
        );
        directory
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// Runs `ldapadd` or `ldapmodify` as the directory's administrator.
    pub fn apply(&self, tool: &str, ldif: &str) {
        let mut child = Command::new(tool)
            .args([
                "-x",
                "-H",
                &self.url(),
                "-D",
                ADMIN_DN,
                "-w",
                ADMIN_PASSWORD,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{tool} (Debian package ldap-utils): {e}"));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(ldif.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{tool} failed: {}\n{ldif}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A person `uid=<uid>,ou=people,…` with an e-mail address and a password.
    pub fn add_person(&self, uid: &str, name: &str, mail: &str, password: &str) {
        self.apply(
            "ldapadd",
            &format!(
                "dn: uid={uid},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {name}\nsn: {name}\nmail: {mail}\nuserPassword: {password}\n"
            ),
        );
    }

    /// A `groupOfNames` with these people (by uid). The schema requires a member, so the
    /// service account is always one: a group can then lose all its people.
    pub fn add_group(&self, name: &str, uids: &[&str]) {
        let members: String = std::iter::once(format!("member: {SERVICE_DN}\n"))
            .chain(
                uids.iter()
                    .map(|uid| format!("member: uid={uid},ou=people,{BASE}\n")),
            )
            .collect();
        self.apply(
            "ldapadd",
            &format!(
                "dn: cn={name},ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: {name}\n{members}"
            ),
        );
    }

    /// Takes a person out of a group.
    pub fn remove_from_group(&self, name: &str, uid: &str) {
        self.apply(
            "ldapmodify",
            &format!(
                "dn: cn={name},ou=groups,{BASE}\nchangetype: modify\ndelete: member\nmember: uid={uid},ou=people,{BASE}\n"
            ),
        );
    }

    /// The `[[auth.ldap]]` table for this directory, plus `extra` lines.
    pub fn config(&self, id: &str, extra: &str) -> String {
        format!(
            "[[auth.ldap]]\nid = \"{id}\"\nname = \"Example directory\"\nurl = \"{}\"\nbind_dn = \"{SERVICE_DN}\"\nuser_base = \"ou=people,{BASE}\"\n{extra}\n",
            self.url()
        )
    }
}

impl Drop for Directory {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
