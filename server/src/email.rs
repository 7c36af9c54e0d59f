//! Email: Send Email actions go into a durable outbox (SQLite), and a sender delivers
//! them over SMTP with lettre (rustls with ring; no OpenSSL), retrying with growing
//! delays. Each email is `pending` until the SMTP server accepts it (`sent`), or
//! `failed` after a permanent refusal or too many attempts; `GET /api/v1/emails` shows
//! where each stands and why.

use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::state::AppState;
use crate::storage::Storage;
use crate::workflows::run::Email;

/// Attempts before an email is given up.
pub const MAX_ATTEMPTS: u32 = 8;
/// First retry delay; it doubles per attempt, up to an hour.
const FIRST_RETRY_SECS: u64 = 30;

/// An SMTP relay and the sender address.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

/// Why the mail settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    /// The SMTP URL could not be used.
    #[error("SMTP URL: {0}")]
    Url(String),
    /// The From address is not an address.
    #[error("SMTP from address {0:?}: {1}")]
    From(String, String),
}

impl Mailer {
    /// A relay from a URL such as `smtp://relay.hospital.org:25`,
    /// `smtp://user:pass@relay:587?tls=required` or `smtps://relay:465`, sending as
    /// `from` (e.g. `Lanyard <lanyard@hospital.org>`).
    pub fn new(url: &str, from: &str) -> Result<Mailer, MailerError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| MailerError::Url(e.to_string()))?
            .timeout(Some(Duration::from_secs(20)))
            .build();
        let from = from.parse().map_err(|e: lettre::address::AddressError| {
            MailerError::From(from.into(), e.to_string())
        })?;
        Ok(Mailer { transport, from })
    }

    /// Delivers one email; `Err((permanent, why))` when the relay refused it.
    async fn send(&self, email: &Email) -> Result<(), (bool, String)> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(email.subject.clone())
            .header(ContentType::TEXT_PLAIN);
        for to in &email.to {
            let mailbox: Mailbox = to
                .parse()
                .map_err(|e| (true, format!("{to:?} is not an email address: {e}")))?;
            builder = builder.to(mailbox);
        }
        let message = builder
            .body(email.body.clone())
            .map_err(|e| (true, format!("could not build the message: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) => Err((e.is_permanent(), e.to_string())),
        }
    }
}

/// How long a mailer's claim on the emails it is sending keeps them from any other
/// mailer (another replica); past it, an email its mailer died sending is tried again.
const CLAIM_SECS: u64 = 300;

/// Sends every due email once. Returns how many were sent.
pub async fn deliver_due<S: Storage>(
    st: &AppState<S>,
    mailer: &Mailer,
) -> Result<usize, crate::error::AppError> {
    let now = st.now();
    let due = st
        .storage
        .due_emails(now, 20, now.plus_secs(CLAIM_SECS))
        .await?;
    let mut sent = 0;
    for mut email in due {
        email.attempts += 1;
        match mailer.send(&email).await {
            Ok(()) => {
                email.state = crate::workflows::run::EmailState::Sent;
                email.sent_at = Some(st.now().as_millis());
                email.last_error = None;
                sent += 1;
                metrics::counter!("lanyard_emails_total", "state" => "sent").increment(1);
            }
            Err((permanent, why)) => {
                tracing::warn!(email = email.id, attempt = email.attempts, error = %why, "email not delivered");
                email.last_error = Some(why);
                if permanent || email.attempts >= MAX_ATTEMPTS {
                    email.state = crate::workflows::run::EmailState::Failed;
                    metrics::counter!("lanyard_emails_total", "state" => "failed").increment(1);
                } else {
                    let delay = FIRST_RETRY_SECS
                        .saturating_mul(1 << (email.attempts - 1).min(7))
                        .min(3600);
                    email.next_attempt_at = st.now().plus_secs(delay).as_millis();
                }
            }
        }
        st.storage.save_email(email).await?;
    }
    Ok(sent)
}
