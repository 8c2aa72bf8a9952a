//! The phone: an authenticator app holding a TOTP secret read off Portico's enrolment page,
//! computing codes with totp-rs as any RFC 6238 app would.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use totp_rs::{Algorithm, Secret, TOTP};

pub struct Authenticator {
    totp: TOTP,
    /// The 30-second step of the last code handed out: Portico accepts each step once.
    last_step: Option<u64>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Authenticator {
    /// From the key as shown (base32, spaces allowed).
    pub fn new(shown_key: &str) -> Authenticator {
        let key: String = shown_key.chars().filter(|c| !c.is_whitespace()).collect();
        let secret = Secret::Encoded(key)
            .to_bytes()
            .expect("the enrolment page shows a base32 key");
        Authenticator {
            totp: TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, secret, None, String::new()),
            last_step: None,
        }
    }

    /// The key from an enrolment page's HTML (`<code id="secret">…</code>`).
    pub fn from_enrolment_page(html: &str) -> Authenticator {
        let start = html
            .find("<code id=\"secret\">")
            .expect("an enrolment page with the key")
            + "<code id=\"secret\">".len();
        let end = start + html[start..].find("</code>").unwrap();
        Authenticator::new(&html[start..end])
    }

    /// The code shown now; if the current step was already used, waits (at most 31 s) for the
    /// next one, as a person does when the app's code has just been typed.
    pub async fn code(&mut self) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(31);
        loop {
            let step = now() / 30;
            if self.last_step.is_none_or(|last| step > last) {
                self.last_step = Some(step);
                return self.totp.generate(step * 30);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the clock did not reach the next 30-second step"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The code of the step already used (to try a replay).
    pub fn last_code(&self) -> String {
        self.totp
            .generate(self.last_step.expect("a code was used") * 30)
    }
}
