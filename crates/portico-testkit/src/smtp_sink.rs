//! A real SMTP server on loopback (aiosmtpd from PyPI) that keeps every message in a maildir,
//! for tests of invitation and password-reset e-mails.

use crate::python::python_with;
use crate::{eventually, free_port, wait_for_port};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct SmtpSink {
    child: Child,
    pub port: u16,
    maildir: tempfile::TempDir,
    python: PathBuf,
}

/// One received message, decoded.
#[derive(Debug, serde::Deserialize)]
pub struct Mail {
    pub to: String,
    pub from: String,
    pub subject: String,
    pub body: String,
}

/// Decodes the maildir with Python's own e-mail parser (quoted-printable and all).
const READ_MAILDIR: &str = r#"
import json, mailbox, sys
out = []
for key, message in mailbox.Maildir(sys.argv[1], create=False).iteritems():
    out.append({"to": message["To"], "from": message["From"], "subject": message["Subject"],
                "body": message.get_payload(decode=True).decode()})
print(json.dumps(out))
"#;

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let python = python_with("aiosmtpd", "aiosmtpd", "aiosmtpd");
        let maildir = tempfile::tempdir().unwrap();
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir(maildir.path().join(sub)).unwrap();
        }
        let port = free_port();
        let child = Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port("aiosmtpd", port, Duration::from_secs(30)).await;
        SmtpSink {
            child,
            port,
            maildir,
            python,
        }
    }

    /// Every message received so far.
    pub fn messages(&self) -> Vec<Mail> {
        let output = Command::new(&self.python)
            .args(["-c", READ_MAILDIR])
            .arg(self.maildir.path())
            .output()
            .unwrap();
        if !output.status.success() {
            return Vec::new();
        }
        serde_json::from_slice(&output.stdout).unwrap_or_default()
    }

    /// Waits (up to 20 s) for a message to `to` and returns it.
    pub async fn wait_for_mail_to(&self, to: &str) -> Mail {
        let this = &self;
        eventually(
            &format!("an e-mail to {to}"),
            Duration::from_secs(20),
            || async move { this.messages().into_iter().find(|m| m.to.contains(to)) },
        )
        .await
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The single-use link (`…?token=…`) in a text.
pub fn link_in(text: &str) -> String {
    text.split_whitespace()
        .find(|word| word.starts_with("http") && word.contains("?token="))
        .unwrap_or_else(|| panic!("no link with a token in:\n{text}"))
        .to_owned()
}
