//! Ticket e-mails over SMTP (lettre): a plain-text and an HTML part with the event and the
//! guest, and the guest's entry code as a QR PNG attachment when the guest has one.

use lettre::{
    message::{header::ContentType, Attachment, Mailbox, MultiPart, SinglePart},
    transport::smtp::authentication::Credentials,
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};

use super::{MessageKind, Recipient, SendError};

/// Host, port and optional (user, password) of the relay.
/// lettre's SMTP transport, as we build it.
pub type SmtpClient = AsyncSmtpTransport<Tokio1Executor>;

pub fn transport(url: &str, timeout: std::time::Duration) -> Result<SmtpClient, String> {
    let (host, port, creds) = crate::config::parse_smtp_url(url)?;
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port)
        .timeout(Some(timeout));
    if let Some((user, pass)) = creds {
        b = b.credentials(Credentials::new(user, pass));
    }
    Ok(b.build())
}

/// Text for HTML bodies.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn subject(kind: MessageKind, r: &Recipient) -> String {
    match kind {
        MessageKind::Invitation => format!("Tu invitación a {}", r.event_name),
        MessageKind::Reminder => format!("Recordatorio: {}", r.event_name),
    }
}

/// Builds the message. An unusable address is permanent: retrying will not fix it.
pub fn build(from: &str, kind: MessageKind, r: &Recipient) -> Result<Message, SendError> {
    let from: Mailbox = from
        .parse()
        .map_err(|e| SendError::refused("invalid_sender", format!("EMAIL_FROM: {e}")))?;
    let address = r.email.as_deref().unwrap_or("");
    let to: Mailbox = format!("{} <{address}>", r.guest_name.replace(['<', '>', '"'], ""))
        .parse()
        .or_else(|_| address.parse())
        .map_err(|e| {
            SendError::refused("invalid_email", format!("guest e-mail {address:?}: {e}"))
        })?;
    let when = r
        .event_starts_at
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string());
    let intro = match kind {
        MessageKind::Invitation => "estás invitado a",
        MessageKind::Reminder => "te recordamos tu lugar en",
    };
    let mut text = format!("Hola {},\n\n{intro} {}", r.guest_name, r.event_name);
    let mut html = format!(
        "<html><body><p>Hola {},</p><p>{intro} <strong>{}</strong>",
        escape(&r.guest_name),
        escape(&r.event_name)
    );
    if let Some(when) = &when {
        text.push_str(&format!(" ({when})"));
        html.push_str(&format!(" ({when})"));
    }
    text.push_str(".\n");
    html.push_str(".</p>");
    if let Some(code) = &r.ticket_code {
        text.push_str(&format!(
            "\nTu código de entrada: {code}\nPresenta el código QR adjunto en la entrada.\n"
        ));
        html.push_str(&format!(
            "<p>Tu código de entrada: <code>{}</code></p><p>Presenta el código QR adjunto en la entrada.</p>",
            escape(code)
        ));
    }
    html.push_str("</body></html>");
    let alternative = MultiPart::alternative()
        .singlepart(SinglePart::plain(text))
        .singlepart(SinglePart::html(html));
    let body = match &r.ticket_code {
        Some(code) => {
            let png = super::qr::png(code).map_err(|e| SendError::refused("qr_failed", e))?;
            let content_type = ContentType::parse("image/png")
                .map_err(|e| SendError::refused("qr_failed", e.to_string()))?;
            MultiPart::mixed()
                .multipart(alternative)
                .singlepart(Attachment::new("entrada-qr.png".into()).body(png, content_type))
        }
        None => alternative,
    };
    Message::builder()
        .from(from)
        .to(to)
        .subject(subject(kind, r))
        .multipart(body)
        .map_err(|e| SendError::refused("invalid_email", e.to_string()))
}

/// Sends through the relay. Connection problems and 4xx SMTP replies (transient by the
/// SMTP spec) are retried; 5xx replies (no such mailbox, refused) are permanent.
pub async fn send(transport: &SmtpClient, message: Message) -> Result<String, SendError> {
    let message_id = message
        .headers()
        .get_raw("Message-ID")
        .map(|v| v.trim().trim_matches(['<', '>']).to_string());
    match transport.send(message).await {
        Ok(_) => Ok(message_id.unwrap_or_else(|| format!("smtp-{}", uuid::Uuid::now_v7()))),
        Err(e) if e.is_permanent() => Err(SendError::refused(
            "provider_rejected",
            format!("smtp: {e}"),
        )),
        Err(e) => Err(SendError::unavailable(
            "provider_unavailable",
            format!("smtp: {e}"),
        )),
    }
}
