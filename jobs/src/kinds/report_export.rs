//! `report_export`: a director report as a CSV or XLSX file in the object store, with a link
//! valid until the task expires. Stages `fetch → aggregate → export → upload`; progress moves
//! as rows stream; a cancel request stops it within one chunk and removes partial output; at
//! most `REPORT_EXPORTS_PER_ORGANIZER` run at once per organizer, across replicas (the others
//! wait without using attempts, and say so in their `stage`).

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use chrono::Utc;
use futures::StreamExt;
use serde_json::{json, Value};
use sqlx::PgConnection;

use engine::{retry::Backoff, Done, JobError, Kind};

use crate::{
    exports::{
        limiter, notify, source, storage_key,
        writer::{Output, Writer, CHUNK_ROWS},
        ExportParams, Report,
    },
    queues,
    storage::Store,
    Ctx, Services, ServicesExt,
};

pub const NAME: &str = "report_export";

/// How long an export waits before asking again for its organizer's slot.
const SLOT_RETRY: Duration = Duration::from_secs(2);

/// The `report_export` kind.
pub struct ReportExport;

impl Kind for ReportExport {
    type State = Services;
    const NAME: &'static str = NAME;
    const QUEUE: &'static str = queues::REPORTS;
    const MAX_ATTEMPTS: i32 = 3;
    const TIMEOUT: Duration = Duration::from_secs(30 * 60);
    const BACKOFF: Backoff = Backoff::new(Duration::from_secs(10), Duration::from_secs(300));

    async fn run(ctx: Ctx) -> Result<Done, JobError> {
        run(ctx).await
    }
}

async fn run(ctx: Ctx) -> Result<Done, JobError> {
    let params: ExportParams = ctx.params()?;
    let started = Instant::now();
    let outcome = export(&ctx, &params).await;
    // Metrics as structured events (seeds/000: director.jobs.reports.duration, status).
    let status = match &outcome {
        Ok(_) => "completed",
        Err(JobError::Waiting { .. }) => return outcome,
        Err(JobError::Cancelled) => "cancelled",
        Err(JobError::Permanent { .. }) => "failed",
        Err(JobError::Superseded) => "superseded",
        Err(_) => "error",
    };
    ctx.metrics().observe(
        "director_jobs_reports_duration_seconds",
        &[
            ("report", params.report.as_str()),
            ("format", params.format.extension()),
            ("status", status),
        ],
        started.elapsed().as_secs_f64(),
    );
    tracing::info!(
        metric = "director.jobs.reports",
        report = params.report.as_str(),
        format = params.format.extension(),
        status,
        duration_ms = started.elapsed().as_millis() as u64,
        "report export finished"
    );
    outcome
}

async fn export(ctx: &Ctx, p: &ExportParams) -> Result<Done, JobError> {
    let store = ctx.storage()?.clone();
    let cfg = &ctx.config().exports;
    let bucket = limiter::bucket(p.filters.organizer_id.as_deref());
    let Some(mut slot) = limiter::try_acquire(ctx.pool(), &bucket, cfg.per_organizer).await? else {
        return Err(JobError::Waiting {
            reason: format!(
                "waiting_for_slot: {} export(s) of {bucket} already running (REPORT_EXPORTS_PER_ORGANIZER={})",
                cfg.per_organizer, cfg.per_organizer
            ),
            after: SLOT_RETRY,
        });
    };
    let outcome = produce(ctx, p, &mut slot.conn, &store).await;
    slot.release().await;
    outcome
}

/// Where the written bytes end up: already on their way to S3, or a file to move into the
/// local store.
enum Destination<'a> {
    Streaming(crate::storage::stream::UploadJoin),
    Local(&'a crate::storage::local::LocalStore),
}

/// The attempt's scratch directory, removed whatever happens (partial files included).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn produce(
    ctx: &Ctx,
    p: &ExportParams,
    conn: &mut PgConnection,
    store: &Store,
) -> Result<Done, JobError> {
    let filename = p.filename(ctx.id);
    let scratch = Scratch(
        ctx.config()
            .exports
            .scratch_dir
            .join(format!("{}-{}", ctx.id, ctx.attempt)),
    );
    std::fs::create_dir_all(&scratch.0).map_err(|e| {
        JobError::retryable(
            "scratch_unavailable",
            format!("{}: {e}", scratch.0.display()),
        )
    })?;
    let file = scratch.0.join(&filename);
    let key = storage_key(ctx.id, &filename);
    ctx.progress(0, "fetch").await;
    let t_start = Instant::now();
    // S3: the file streams into a multipart upload while it is written. Local disk: written
    // to scratch, then moved into the store.
    let (output, destination) = match store {
        Store::S3(s3) => {
            let (part_writer, join) = s3
                .start_stream(&key, p.format.content_type(), &filename)
                .await
                .map_err(|e| JobError::retryable("upload_failed", e.to_string()))?;
            (Output::Stream(part_writer), Destination::Streaming(join))
        }
        Store::Local(local) => (Output::File(file.clone()), Destination::Local(local)),
    };
    let writer = Writer::spawn(
        p.format,
        p.report.as_str(),
        source::columns(p.report),
        output,
        scratch.0.clone(),
        ctx.config().exports.xlsx_zip_level,
    );
    let fed = match p.report {
        Report::Ledger => feed_ledger(ctx, p, conn, &writer).await,
        _ => feed_report(ctx, p, &writer).await,
    };
    if let Err(e) = fed {
        writer.abandon().await;
        if let Destination::Streaming(join) = destination {
            let _ = join.await; // the upload aborts itself once the writer is gone
        }
        return Err(e);
    }
    let written = writer.finish().await;
    let export_ms = t_start.elapsed().as_millis() as u64;
    ctx.progress(90, "upload").await;
    let t_upload = Instant::now();
    let (rows, size_bytes) = match (written, destination) {
        (Ok((rows, _)), Destination::Streaming(join)) => match join.await {
            Ok(Ok(size)) => (rows, size),
            Ok(Err(e)) => return Err(JobError::retryable("upload_failed", e.to_string())),
            Err(e) => return Err(JobError::retryable("upload_failed", e.to_string())),
        },
        (Err(e), Destination::Streaming(join)) => {
            // A failed upload stops the writer: report the upload's own error.
            let cause = match join.await {
                Ok(Err(up)) => format!("{e} ({up})"),
                _ => e,
            };
            return Err(JobError::retryable("export_failed", cause));
        }
        (Err(e), Destination::Local(_)) => return Err(JobError::retryable("export_failed", e)),
        (Ok((rows, _)), Destination::Local(local)) => {
            ctx.check_cancel().await?;
            match local.put(&key, &file).await {
                Ok(size) => (rows, size),
                Err(e) => return Err(JobError::retryable("upload_failed", e.to_string())),
            }
        }
    };
    let upload_ms = t_upload.elapsed().as_millis() as u64;
    // A cancel that arrived during the last part: the file must not outlive the task.
    if let Err(e) = ctx.check_cancel().await {
        let _ = store.delete(&key).await;
        return Err(e);
    }
    // The task expires `task_ttl` after it completes (a moment from now): the link lives as
    // long, and the result route refuses it after that.
    let expires_at = Utc::now()
        + chrono::Duration::from_std(ctx.config().task_ttl).unwrap_or(chrono::Duration::days(1));
    let url = match store.link(&key, expires_at).await {
        Ok(url) => url,
        Err(e) => {
            let _ = store.delete(&key).await;
            return Err(JobError::retryable("link_failed", e.to_string()));
        }
    };
    let mut result = json!({
        "url": url,
        "filename": filename,
        "format": p.format.extension(),
        "report": p.report.as_str(),
        "rows": rows,
        "sizeBytes": size_bytes,
        "expiresAt": expires_at,
        "contentType": p.format.content_type(),
        "storage": { "backend": store.name(), "key": key },
        "timings": { "exportMs": export_ms, "uploadMs": upload_ms },
    });
    if !p.notify_emails.is_empty() {
        ctx.progress(99, "notify").await;
        let ready = notify::Ready {
            task: ctx.id,
            report: p.report.as_str(),
            filename: &filename,
            url: &url,
            rows,
            expires_at,
        };
        result["notified"] = notify::send_all(ctx.providers(), &p.notify_emails, &ready).await;
    }
    tracing::info!(
        report = p.report.as_str(),
        format = p.format.extension(),
        rows,
        size_bytes,
        backend = store.name(),
        "export stored"
    );
    Ok(Done::Result(result))
}

/// The ledger, streamed: rows go to the writer in chunks as Postgres sends them.
async fn feed_ledger(
    ctx: &Ctx,
    p: &ExportParams,
    conn: &mut PgConnection,
    writer: &Writer,
) -> Result<(), JobError> {
    source::prepare(conn).await?;
    let total = source::ledger_count(conn, &p.filters).await?.max(1) as u64;
    ctx.progress(5, "export").await;
    let sql = source::ledger_sql();
    let mut rows = source::ledger_rows(conn, &p.filters, &sql);
    let mut chunk = Vec::with_capacity(CHUNK_ROWS);
    let mut sent = 0u64;
    while let Some(row) = rows.next().await {
        chunk.push(row?);
        if chunk.len() == CHUNK_ROWS {
            sent += chunk.len() as u64;
            ctx.check_cancel().await?;
            if !writer.send(std::mem::take(&mut chunk)).await {
                return Ok(()); // the writer stopped; `finish` reports why
            }
            chunk.reserve(CHUNK_ROWS);
            ctx.progress(percent(5, 90, sent, total), "export").await;
        }
    }
    if !chunk.is_empty() {
        writer.send(chunk).await;
    }
    Ok(())
}

/// An aggregate report: computed by the synchronous report's query, then written.
async fn feed_report(ctx: &Ctx, p: &ExportParams, writer: &Writer) -> Result<(), JobError> {
    ctx.progress(5, "aggregate").await;
    let rows = source::report_rows(ctx.pool(), p.report, &p.filters).await?;
    ctx.check_cancel().await?;
    ctx.progress(50, "export").await;
    let total = rows.len().max(1) as u64;
    let mut sent = 0u64;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(CHUNK_ROWS).collect();
        sent += chunk.len() as u64;
        ctx.check_cancel().await?;
        if !writer.send(chunk).await {
            break;
        }
        ctx.progress(percent(50, 90, sent, total), "export").await;
    }
    Ok(())
}

/// `lo + (hi − lo) · done / total`, as a percent.
fn percent(lo: u64, hi: u64, done: u64, total: u64) -> u8 {
    (lo + (hi - lo) * done.min(total) / total.max(1)) as u8
}

/// The stored file of an export task's result, for retention.
pub fn stored_key(result: &Value) -> Option<&str> {
    result["storage"]["key"].as_str()
}
