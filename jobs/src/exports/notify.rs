//! "Your export is ready": one e-mail per address in `notifyEmails`, with the link, through
//! the same SMTP client as ticket mails (or the outbox in mock mode). A mail that fails is
//! reported in the task's result; it never fails the export.

use lettre::{
    message::{Mailbox, MultiPart, SinglePart},
    Message,
};
use serde_json::{json, Value};

use crate::deliveries::{email::escape, providers::Providers};

pub struct Ready<'a> {
    pub task: uuid::Uuid,
    pub report: &'a str,
    pub filename: &'a str,
    pub url: &'a str,
    pub rows: u64,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

fn message(from: &str, to: &str, r: &Ready<'_>) -> Result<Message, String> {
    let from: Mailbox = from.parse().map_err(|e| format!("EMAIL_FROM: {e}"))?;
    let to: Mailbox = to.parse().map_err(|e| format!("{to:?}: {e}"))?;
    let expires = r.expires_at.format("%Y-%m-%d %H:%M UTC");
    let text = format!(
        "Tu reporte {} está listo ({} filas).\n\nDescárgalo aquí: {}\n\nEl enlace vence el {expires}.\n",
        r.filename, r.rows, r.url
    );
    let html = format!(
        "<html><body><p>Tu reporte <strong>{}</strong> está listo ({} filas).</p>\
         <p><a href=\"{}\">Descargar {}</a></p><p>El enlace vence el {expires}.</p></body></html>",
        escape(r.filename),
        r.rows,
        escape(r.url),
        escape(r.filename)
    );
    Message::builder()
        .from(from)
        .to(to)
        .subject(format!("Reporte listo: {}", r.report))
        .multipart(
            MultiPart::alternative()
                .singlepart(SinglePart::plain(text))
                .singlepart(SinglePart::html(html)),
        )
        .map_err(|e| e.to_string())
}

/// Sends to every address; returns `{sent: [...], failed: [{email, error}]}`.
pub async fn send_all(providers: &Providers, to: &[String], ready: &Ready<'_>) -> Value {
    let mut sent = Vec::new();
    let mut failed = Vec::new();
    for (i, address) in to.iter().enumerate() {
        let outcome = match message(providers.email_from(), address, ready) {
            Ok(m) => providers
                .send_message(m, &format!("export-{}-{i}", ready.task))
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(_) => sent.push(address.clone()),
            Err(error) => {
                tracing::warn!(task.id = %ready.task, email = %address, %error, "export notification not sent");
                failed.push(json!({ "email": address, "error": error }));
            }
        }
    }
    json!({ "sent": sent, "failed": failed })
}
