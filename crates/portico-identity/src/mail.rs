//! Sending invitation and password-reset e-mails over SMTP (lettre). The password comes from
//! `PORTICO_SMTP_PASSWORD`, never from the config file, and never appears in an error.

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use portico_core::{SmtpConfig, SmtpSecurity};

pub const PASSWORD_ENV: &str = "PORTICO_SMTP_PASSWORD";

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error(
        "smtp.from = \"{0}\" is not an e-mail sender; write e.g. \"Portico <portico@example.com>\""
    )]
    From(String),
    #[error("\"{0}\" is not an e-mail address a message can be sent to")]
    To(String),
    #[error("cannot set up TLS to {host}: {reason}")]
    Tls { host: String, reason: String },
    #[error("smtp.username is set but {PASSWORD_ENV} is not; set it in Portico's environment")]
    NoPassword,
    #[error("the mail server {server} did not take the message: {reason}. Check [smtp] in the config and that the server is reachable")]
    Send { server: String, reason: String },
}

/// Sends mail through the configured server; cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    server: String,
}

impl Mailer {
    pub fn new(config: &SmtpConfig) -> Result<Mailer, MailError> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|_| MailError::From(config.from.clone()))?;
        let tls = |host: &str| {
            TlsParameters::new(host.to_owned()).map_err(|e| MailError::Tls {
                host: host.to_owned(),
                reason: e.to_string(),
            })
        };
        let builder = match config.security {
            SmtpSecurity::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
                    .tls(Tls::Required(tls(&config.host)?))
            }
            SmtpSecurity::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
                    .tls(Tls::Wrapper(tls(&config.host)?))
            }
            // Validation allows this only for a mail server on loopback.
            SmtpSecurity::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            }
        };
        let mut builder = builder.port(config.port).timeout(Some(config.timeout));
        if let Some(username) = &config.username {
            let password = std::env::var(PASSWORD_ENV).map_err(|_| MailError::NoPassword)?;
            builder = builder.credentials(Credentials::new(username.clone(), password));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            server: format!("{}:{}", config.host, config.port),
        })
    }

    /// Sends a plain-text message.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), MailError> {
        let to_box: Mailbox = to.parse().map_err(|_| MailError::To(to.to_owned()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to_box)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| MailError::Send {
                server: self.server.clone(),
                reason: e.to_string(),
            })?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| MailError::Send {
                server: self.server.clone(),
                reason: e.to_string(),
            })
    }
}
