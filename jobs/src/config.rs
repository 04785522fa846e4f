//! Configuration shared by the api and the worker, read from the environment only.
//!
//! Variables (all optional; see `.env.example`): `TAQUILLA_ENV` (`production` unless set to
//! `development`: production refuses the demo defaults), `DATABASE_URL`, `DATABASE_MAX_CONNECTIONS`, `REDIS_URL`, `REDIS_PREFIX`,
//! `QUEUE_MAX_READY`, `QUEUE_REPUSH_AFTER_SECONDS`, `TASK_LEASE_SECONDS`,
//! `DIRECTOR_REPORT_JOB_TTL_SECONDS`, `TICKET_PREMIUM_FACTOR`, `DEFAULT_CURRENCY`,
//! `DIRECTOR_CACHE_TTL_SECONDS`, `DIRECTOR_REPORT_CACHE_TTL_SECONDS`,
//! `KPI_REFRESH_INTERVAL_MINUTES`, `KPI_REFRESH_COALESCE_SECONDS`,
//! `TASK_CLEANUP_INTERVAL_MINUTES`, `REDEMPTION_AUDIT_RETENTION_DAYS`, the delivery settings
//! of [`DeliveryConfig`], the export settings of [`ExportConfig`] and the landing job's of
//! [`crate::landing::LandingConfig`].

use std::{env, path::PathBuf, time::Duration};

pub use engine::env::{parsed, seconds, var, ConfigError};

/// `TAQUILLA_ENV`: which defaults are safe. Production (the default, so a forgotten variable
/// fails closed) refuses the demo tokens and unsigned webhooks and protects `/metrics`;
/// development keeps the laptop flow of the README working without any secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Environment {
    Development,
    #[default]
    Production,
}

impl Environment {
    pub fn from_env() -> Result<Self, ConfigError> {
        match var("TAQUILLA_ENV") {
            None => Ok(Self::Production),
            Some(raw) => Self::parse(&raw).ok_or_else(|| ConfigError {
                name: "TAQUILLA_ENV".into(),
                message: format!("{raw:?} is neither development nor production"),
            }),
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" => Some(Self::Development),
            "production" | "prod" => Some(Self::Production),
            _ => None,
        }
    }

    pub fn is_production(self) -> bool {
        self == Self::Production
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Production => "production",
        }
    }
}

/// Bounds of `REDEMPTION_AUDIT_RETENTION_DAYS` and of `sql_maintenance`'s `retentionDays`.
pub const REDEMPTION_AUDIT_RETENTION_DAYS: std::ops::RangeInclusive<i64> = 1..=3650;

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/taquilla";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

#[derive(Debug, Clone)]
pub struct Config {
    /// `TAQUILLA_ENV` (see [`Environment`]).
    pub environment: Environment,
    pub database_url: String,
    pub database_max_connections: u32,
    pub redis_url: String,
    /// Namespace of every Redis key we (and apalis, through the queue names) write.
    pub redis_prefix: String,
    /// Most transport messages waiting in Redis per queue (DESIGN §4).
    pub queue_max_ready: usize,
    /// A pushed message not claimed after this long is pushed again (covers Redis data loss).
    pub queue_repush_after: Duration,
    /// How long a claim holds a task before another worker may take it over.
    pub task_lease: Duration,
    /// Finished tasks (and progress hashes) live this long (`DIRECTOR_REPORT_JOB_TTL_SECONDS`).
    pub task_ttl: Duration,
    pub ticket_premium_factor: i64,
    pub default_currency: String,
    /// TTL of the cached `/director/overview` (`DIRECTOR_CACHE_TTL_SECONDS`).
    pub director_cache_ttl: Duration,
    /// TTL of cached `/director/reports/*` (`DIRECTOR_REPORT_CACHE_TTL_SECONDS`).
    pub director_report_cache_ttl: Duration,
    /// Period of the cron-driven KPI refresh (`KPI_REFRESH_INTERVAL_MINUTES`).
    pub kpi_refresh_interval: Duration,
    /// Writes within this window share one KPI refresh, run at its end.
    pub kpi_refresh_coalesce: Duration,
    /// Period of the retention job `task_cleanup` (`TASK_CLEANUP_INTERVAL_MINUTES`, default
    /// 1440: ticks aligned on the epoch, so nightly at 00:00 UTC).
    pub task_cleanup_interval: Duration,
    pub deliveries: DeliveryConfig,
    pub exports: ExportConfig,
    pub payments: crate::payments::config::PaymentsConfig,
    /// The nightly `landing_ttl` job (`LANDING_*`).
    pub landing: crate::landing::LandingConfig,
    /// The IANA time zone the built-in cron schedules are read in (`SCHEDULE_TIME_ZONE`,
    /// default UTC): the nightly landing TTL at `LANDING_JOB_HOUR`:`LANDING_JOB_MINUTE` there.
    pub schedule_time_zone: String,
    /// Days of redemption audit log kept by `sql_maintenance`'s audit cleanup
    /// (`REDEMPTION_AUDIT_RETENTION_DAYS`, 1–3650, default 90 as seeds/004).
    pub redemption_audit_retention_days: i32,
}

pub const DEFAULT_WHATSAPP_API_URL: &str = "https://waba-v2.360dialog.io";

/// Outbound messages (issue 5). A provider without credentials runs in mock mode: sends
/// succeed and are written to `OUTBOX_DIR` instead.
#[derive(Clone)]
pub struct DeliveryConfig {
    /// `WHATSAPP_API_URL`: base of the 360dialog (Cloud API) endpoint; `/messages` is added.
    pub whatsapp_api_url: String,
    /// `WHATSAPP_API_KEY` (header `D360-API-KEY`); unset = mock mode.
    pub whatsapp_api_key: Option<String>,
    /// `WHATSAPP_TEMPLATE_LANGUAGE`: language code of template messages.
    pub whatsapp_template_language: String,
    /// `WA_WEBHOOK_SECRET`: a shared secret `/wa/webhook` accepts in `X-Webhook-Secret`.
    pub wa_webhook_secret: Option<String>,
    /// `WA_APP_SECRET`: the Meta app secret; `/wa/webhook` accepts a body whose
    /// `X-Hub-Signature-256` is its HMAC-SHA256 under this key. With neither secret set the
    /// webhook is open in development and refused (401) in production.
    pub wa_app_secret: Option<String>,
    /// `SMTP_URL`, e.g. `smtp://user:pass@127.0.0.1:9125` (plaintext); unset = mock mode.
    pub smtp_url: Option<String>,
    /// `EMAIL_FROM`: sender of ticket e-mails.
    pub email_from: String,
    /// `WHATSAPP_MAX_PER_SECOND` / `EMAIL_MAX_PER_SECOND`: global limits across every
    /// replica (0 = unlimited).
    pub whatsapp_max_per_second: u32,
    pub email_max_per_second: u32,
    /// `OUTBOX_DIR`: where mock mode records what it would have sent.
    pub outbox_dir: PathBuf,
    /// `PROVIDER_TIMEOUT_SECONDS`: one provider call, connect to answer.
    pub provider_timeout: Duration,
    /// `DELIVERY_BULK_BATCH`: children created per transaction by a bulk send.
    pub bulk_batch: usize,
}

impl std::fmt::Debug for DeliveryConfig {
    // Keys, webhook secrets and the SMTP URL (it may carry a password) print as set/unset.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |v: &Option<String>| v.as_ref().map(|_| "<set>");
        f.debug_struct("DeliveryConfig")
            .field("whatsapp_api_url", &self.whatsapp_api_url)
            .field("whatsapp_api_key", &set(&self.whatsapp_api_key))
            .field(
                "whatsapp_template_language",
                &self.whatsapp_template_language,
            )
            .field("wa_webhook_secret", &set(&self.wa_webhook_secret))
            .field("wa_app_secret", &set(&self.wa_app_secret))
            .field("smtp_url", &set(&self.smtp_url))
            .field("email_from", &self.email_from)
            .field("whatsapp_max_per_second", &self.whatsapp_max_per_second)
            .field("email_max_per_second", &self.email_max_per_second)
            .field("outbox_dir", &self.outbox_dir)
            .field("provider_timeout", &self.provider_timeout)
            .field("bulk_batch", &self.bulk_batch)
            .finish()
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            whatsapp_api_url: DEFAULT_WHATSAPP_API_URL.into(),
            whatsapp_api_key: None,
            whatsapp_template_language: "es_MX".into(),
            wa_webhook_secret: None,
            wa_app_secret: None,
            smtp_url: None,
            email_from: "Taquilla <no-reply@taquilla.local>".into(),
            whatsapp_max_per_second: 80,
            email_max_per_second: 10,
            outbox_dir: PathBuf::from("var/outbox"),
            provider_timeout: Duration::from_secs(10),
            bulk_batch: 500,
        }
    }
}

impl DeliveryConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        let batch: usize = parsed("DELIVERY_BULK_BATCH", d.bulk_batch)?;
        if !(1..=5000).contains(&batch) {
            return Err(ConfigError {
                name: "DELIVERY_BULK_BATCH".into(),
                message: "must be between 1 and 5000".into(),
            });
        }
        let smtp_url = var("SMTP_URL");
        if let Some(url) = &smtp_url {
            if let Err(message) = parse_smtp_url(url) {
                return Err(ConfigError {
                    name: "SMTP_URL".into(),
                    message,
                });
            }
        }
        Ok(Self {
            whatsapp_api_url: var("WHATSAPP_API_URL")
                .unwrap_or(d.whatsapp_api_url)
                .trim_end_matches('/')
                .to_string(),
            whatsapp_api_key: var("WHATSAPP_API_KEY"),
            whatsapp_template_language: var("WHATSAPP_TEMPLATE_LANGUAGE")
                .unwrap_or(d.whatsapp_template_language),
            wa_webhook_secret: var("WA_WEBHOOK_SECRET"),
            wa_app_secret: var("WA_APP_SECRET"),
            smtp_url,
            email_from: var("EMAIL_FROM").unwrap_or(d.email_from),
            whatsapp_max_per_second: parsed("WHATSAPP_MAX_PER_SECOND", d.whatsapp_max_per_second)?,
            email_max_per_second: parsed("EMAIL_MAX_PER_SECOND", d.email_max_per_second)?,
            outbox_dir: var("OUTBOX_DIR").map(PathBuf::from).unwrap_or(d.outbox_dir),
            provider_timeout: seconds("PROVIDER_TIMEOUT_SECONDS", 10)?,
            bulk_batch: batch,
        })
    }
}

impl Config {
    /// The engine's part of the configuration.
    pub fn engine(&self) -> engine::EngineConfig {
        engine::EngineConfig {
            redis_prefix: self.redis_prefix.clone(),
            queue_max_ready: self.queue_max_ready,
            queue_repush_after: self.queue_repush_after,
            task_lease: self.task_lease,
            task_ttl: self.task_ttl,
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        let prefix = var("REDIS_PREFIX").unwrap_or_else(|| "taquilla".into());
        if !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ConfigError {
                name: "REDIS_PREFIX".into(),
                message: "only letters, digits, '_' and '-' are allowed".into(),
            });
        }
        let factor: i64 = parsed("TICKET_PREMIUM_FACTOR", 2)?;
        if !(1..=1000).contains(&factor) {
            return Err(ConfigError {
                name: "TICKET_PREMIUM_FACTOR".into(),
                message: "must be between 1 and 1000".into(),
            });
        }
        let currency = var("DEFAULT_CURRENCY")
            .unwrap_or_else(|| "MXN".into())
            .to_ascii_uppercase();
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(ConfigError {
                name: "DEFAULT_CURRENCY".into(),
                message: "must be a 3-letter ISO 4217 code".into(),
            });
        }
        let max_ready: usize = parsed("QUEUE_MAX_READY", 1000)?;
        if !(1..=7000).contains(&max_ready) {
            // apalis-redis fails above ~8,000 due messages (Lua unpack limit, DESIGN §4).
            return Err(ConfigError {
                name: "QUEUE_MAX_READY".into(),
                message: "must be between 1 and 7000".into(),
            });
        }
        let retention: i64 = parsed("REDEMPTION_AUDIT_RETENTION_DAYS", 90)?;
        let bounds = REDEMPTION_AUDIT_RETENTION_DAYS;
        if !bounds.contains(&retention) {
            return Err(ConfigError {
                name: "REDEMPTION_AUDIT_RETENTION_DAYS".into(),
                message: format!("must be between {} and {}", bounds.start(), bounds.end()),
            });
        }
        Ok(Self {
            environment: Environment::from_env()?,
            database_url: var("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into()),
            database_max_connections: parsed("DATABASE_MAX_CONNECTIONS", 20)?,
            redis_url: var("REDIS_URL").unwrap_or_else(|| DEFAULT_REDIS_URL.into()),
            redis_prefix: prefix,
            queue_max_ready: max_ready,
            queue_repush_after: seconds("QUEUE_REPUSH_AFTER_SECONDS", 30)?,
            task_lease: seconds("TASK_LEASE_SECONDS", 30)?,
            task_ttl: seconds("DIRECTOR_REPORT_JOB_TTL_SECONDS", 86_400)?,
            ticket_premium_factor: factor,
            default_currency: currency,
            director_cache_ttl: seconds("DIRECTOR_CACHE_TTL_SECONDS", 45)?,
            director_report_cache_ttl: seconds("DIRECTOR_REPORT_CACHE_TTL_SECONDS", 45)?,
            kpi_refresh_interval: Duration::from_secs(
                60 * parsed::<u64>("KPI_REFRESH_INTERVAL_MINUTES", 30)?.max(1),
            ),
            kpi_refresh_coalesce: seconds("KPI_REFRESH_COALESCE_SECONDS", 5)?,
            task_cleanup_interval: Duration::from_secs(
                60 * parsed::<u64>("TASK_CLEANUP_INTERVAL_MINUTES", 1440)?.max(1),
            ),
            deliveries: DeliveryConfig::from_env()?,
            exports: ExportConfig::from_env()?,
            payments: crate::payments::config::PaymentsConfig::from_env()?,
            landing: crate::landing::LandingConfig::from_env()?,
            schedule_time_zone: var("SCHEDULE_TIME_ZONE").unwrap_or_else(|| "UTC".into()),
            redemption_audit_retention_days: retention as i32,
        })
    }
}

/// An S3-compatible bucket (`S3_BUCKET` set): AWS, or any server given by `S3_ENDPOINT`.
#[derive(Clone)]
pub struct S3Config {
    pub bucket: String,
    /// `S3_ENDPOINT`, e.g. `http://127.0.0.1:9100`; unset = AWS for `region`.
    pub endpoint: Option<String>,
    /// `S3_REGION` (or `AWS_REGION`), default `us-east-1`.
    pub region: String,
    /// `S3_ACCESS_KEY_ID` / `S3_SECRET_ACCESS_KEY` (or the `AWS_` names).
    pub access_key_id: String,
    pub secret_access_key: String,
    /// `S3_FORCE_PATH_STYLE`: `bucket` in the path, not the host name; default on when an
    /// endpoint is set (what S3-compatible servers expect).
    pub force_path_style: bool,
}

impl std::fmt::Debug for S3Config {
    // Never print the secret key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("force_path_style", &self.force_path_style)
            .finish()
    }
}

/// Report exports (issue 4): where files go and how their links are signed.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// `None` = the local-disk store under `dir`, with links signed by us and served by the api.
    pub s3: Option<S3Config>,
    /// `EXPORT_DIR`: root of the local-disk store (shared by the api and the worker).
    pub dir: PathBuf,
    /// `EXPORT_SCRATCH_DIR`: where files are written before the upload (the XLSX writer also
    /// keeps its sheet data here: about 430 MB per million rows). Default: the system temp dir.
    pub scratch_dir: PathBuf,
    /// `PUBLIC_BASE_URL`: how clients reach the api, for local-disk links (default
    /// `http://127.0.0.1:$PORT`).
    pub public_base_url: String,
    /// `FILE_URL_SECRET`: HMAC key of local-disk links; unset = a random key kept in
    /// `EXPORT_DIR/.url-secret`, shared by every process that shares the directory.
    pub url_secret: Option<String>,
    /// `REPORT_EXPORTS_PER_ORGANIZER`: exports of one organizer running at once, all replicas.
    pub per_organizer: u32,
    /// `EXPORT_XLSX_ZIP_LEVEL` (1–9): deflate level of XLSX files. Packing the zip is the one
    /// step that cannot overlap with reading rows; 1 is faster, 3 (default) smaller.
    pub xlsx_zip_level: u8,
    /// `S3_MULTIPART_PART_MB`: part size of multipart uploads (S3 minimum 5). A streaming
    /// upload holds about four parts in memory.
    pub part_bytes: usize,
}

impl Default for ExportConfig {
    fn default() -> Self {
        Self {
            s3: None,
            dir: PathBuf::from("var/exports"),
            scratch_dir: env::temp_dir().join("taquilla-exports"),
            public_base_url: "http://127.0.0.1:8080".into(),
            url_secret: None,
            per_organizer: 1,
            xlsx_zip_level: 3,
            part_bytes: 8 * 1024 * 1024,
        }
    }
}

impl ExportConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        let either = |a: &str, b: &str| var(a).or_else(|| var(b));
        let s3 = match var("S3_BUCKET") {
            None => None,
            Some(bucket) => {
                let missing = |name: &str| ConfigError {
                    name: name.into(),
                    message: "is required when S3_BUCKET is set".into(),
                };
                let endpoint = var("S3_ENDPOINT").map(|e| e.trim_end_matches('/').to_string());
                Some(S3Config {
                    bucket,
                    region: either("S3_REGION", "AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
                    access_key_id: either("S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID")
                        .ok_or_else(|| missing("S3_ACCESS_KEY_ID"))?,
                    secret_access_key: either("S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY")
                        .ok_or_else(|| missing("S3_SECRET_ACCESS_KEY"))?,
                    force_path_style: parsed("S3_FORCE_PATH_STYLE", endpoint.is_some())?,
                    endpoint,
                })
            }
        };
        let per_organizer: u32 = parsed("REPORT_EXPORTS_PER_ORGANIZER", d.per_organizer)?;
        if !(1..=1000).contains(&per_organizer) {
            return Err(ConfigError {
                name: "REPORT_EXPORTS_PER_ORGANIZER".into(),
                message: "must be between 1 and 1000".into(),
            });
        }
        let zip_level: u8 = parsed("EXPORT_XLSX_ZIP_LEVEL", d.xlsx_zip_level)?;
        if !(1..=9).contains(&zip_level) {
            return Err(ConfigError {
                name: "EXPORT_XLSX_ZIP_LEVEL".into(),
                message: "must be between 1 and 9".into(),
            });
        }
        let part_mb: usize = parsed("S3_MULTIPART_PART_MB", d.part_bytes >> 20)?;
        if !(5..=512).contains(&part_mb) {
            return Err(ConfigError {
                name: "S3_MULTIPART_PART_MB".into(),
                message: "must be between 5 and 512 (S3 parts are at least 5 MiB)".into(),
            });
        }
        Ok(Self {
            s3,
            dir: var("EXPORT_DIR").map(PathBuf::from).unwrap_or(d.dir),
            scratch_dir: var("EXPORT_SCRATCH_DIR")
                .map(PathBuf::from)
                .unwrap_or(d.scratch_dir),
            // Default: this machine at the api's port (PORT), as scripts/dev.sh runs it.
            public_base_url: var("PUBLIC_BASE_URL")
                .map(|u| u.trim_end_matches('/').to_string())
                .or_else(|| var("PORT").map(|p| format!("http://127.0.0.1:{}", p.trim())))
                .unwrap_or(d.public_base_url),
            url_secret: var("FILE_URL_SECRET"),
            per_organizer,
            xlsx_zip_level: zip_level,
            part_bytes: part_mb << 20,
        })
    }
}

pub type SmtpTarget = (String, u16, Option<(String, String)>);

/// `smtp://[user:pass@]host[:port]` → (host, port, credentials). Plaintext only: TLS would
/// need a TLS feature of lettre that this build leaves out (local relays and sinks do not
/// need it).
pub fn parse_smtp_url(url: &str) -> Result<SmtpTarget, String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if u.scheme() != "smtp" {
        return Err("only smtp:// (plaintext) is supported".into());
    }
    let host = u
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("the URL has no host")?
        .to_string();
    let port = u.port().unwrap_or(25);
    let creds = (!u.username().is_empty()).then(|| {
        (
            u.username().to_string(),
            u.password().unwrap_or("").to_string(),
        )
    });
    Ok((host, port, creds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_names() {
        assert_eq!(Environment::default(), Environment::Production);
        assert_eq!(
            Environment::parse(" Development "),
            Some(Environment::Development)
        );
        assert_eq!(Environment::parse("prod"), Some(Environment::Production));
        assert_eq!(Environment::parse("staging"), None);
    }

    #[test]
    fn delivery_secrets_never_print() {
        let d = DeliveryConfig {
            whatsapp_api_key: Some("key-123".into()),
            wa_webhook_secret: Some("shared-456".into()),
            wa_app_secret: Some("app-789".into()),
            smtp_url: Some("smtp://user:pw-000@127.0.0.1:25".into()),
            ..Default::default()
        };
        let printed = format!("{d:?}");
        for secret in ["key-123", "shared-456", "app-789", "pw-000"] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }
}
