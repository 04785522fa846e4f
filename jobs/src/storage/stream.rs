//! A multipart upload fed while the file is still being written: the blocking writer thread
//! writes into a [`PartWriter`] (`std::io::Write`), each full part goes through a one-slot
//! channel to an async task that uploads up to two parts at once. Writing and uploading
//! overlap, nothing is written to local disk, and memory stays at a few parts whatever the
//! file size. If the writer is dropped without [`PartWriter::finish`] (cancel, failure), the
//! upload is aborted, so no parts are left behind.

use std::io::{self, Write};

use aws_sdk_s3::{
    primitives::ByteStream,
    types::{CompletedMultipartUpload, CompletedPart},
    Client,
};
use futures::{stream::FuturesUnordered, StreamExt};
use tokio::sync::mpsc;

use super::StorageError;

/// Parts uploaded at once by one stream.
const PARTS_IN_FLIGHT: usize = 2;

/// `Some(bytes)`: the next part; `None`: the end of the file.
type Msg = Option<Vec<u8>>;

/// The writing side, used on a blocking thread.
pub struct PartWriter {
    tx: Option<mpsc::Sender<Msg>>,
    buf: Vec<u8>,
    part_bytes: usize,
    written: u64,
}

impl PartWriter {
    fn ship(&mut self) -> io::Result<()> {
        let part = std::mem::replace(&mut self.buf, Vec::with_capacity(self.part_bytes));
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| io::Error::other("upload closed"))?;
        tx.blocking_send(Some(part))
            .map_err(|_| io::Error::other("the upload stopped (see the upload error)"))
    }

    /// Sends the last part and the end marker; returns the bytes written. Only then does the
    /// uploader complete the object.
    pub fn finish(mut self) -> io::Result<u64> {
        if !self.buf.is_empty() || self.written == 0 {
            self.ship()?;
        }
        if let Some(tx) = self.tx.take() {
            tx.blocking_send(None)
                .map_err(|_| io::Error::other("the upload stopped (see the upload error)"))?;
        }
        Ok(self.written)
    }
}

impl Write for PartWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.part_bytes - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        self.written += n as u64;
        if self.buf.len() == self.part_bytes {
            self.ship()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The uploading side: resolves to the object's size once completed.
pub type UploadJoin = tokio::task::JoinHandle<Result<u64, StorageError>>;

/// Starts a multipart upload of `key` and returns its writer and the task completing it.
pub async fn start(
    client: &Client,
    bucket: &str,
    key: &str,
    content_type: &str,
    filename: &str,
    part_bytes: usize,
) -> Result<(PartWriter, UploadJoin), StorageError> {
    let created = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .content_disposition(format!("attachment; filename=\"{filename}\""))
        .send()
        .await
        .map_err(|e| StorageError::failed(aws_sdk_s3::error::DisplayErrorContext(e)))?;
    let upload_id = created
        .upload_id()
        .ok_or_else(|| StorageError::failed("S3 returned no upload id"))?
        .to_string();
    let (tx, rx) = mpsc::channel::<Msg>(1);
    let up = Uploader {
        client: client.clone(),
        bucket: bucket.to_string(),
        key: key.to_string(),
        upload_id,
    };
    let join = tokio::spawn(async move {
        let outcome = up.run(rx).await;
        if outcome.is_err() {
            up.abort().await;
        }
        outcome
    });
    Ok((
        PartWriter {
            tx: Some(tx),
            buf: Vec::with_capacity(part_bytes),
            part_bytes,
            written: 0,
        },
        join,
    ))
}

struct Uploader {
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
}

impl Uploader {
    async fn run(&self, mut rx: mpsc::Receiver<Msg>) -> Result<u64, StorageError> {
        let mut in_flight = FuturesUnordered::new();
        let mut parts: Vec<CompletedPart> = Vec::new();
        let mut size = 0u64;
        let mut number = 0i32;
        loop {
            // Keep at most PARTS_IN_FLIGHT uploads going before taking the next part, so a
            // slow S3 slows the writer instead of filling memory.
            while in_flight.len() >= PARTS_IN_FLIGHT {
                if let Some(done) = in_flight.next().await {
                    parts.push(done?);
                }
            }
            match rx.recv().await {
                Some(Some(bytes)) => {
                    number += 1;
                    size += bytes.len() as u64;
                    in_flight.push(self.part(number, bytes));
                }
                Some(None) => break,
                None => return Err(StorageError::Cancelled), // writer dropped: abandoned
            }
        }
        while let Some(done) = in_flight.next().await {
            parts.push(done?);
        }
        parts.sort_by_key(|p| p.part_number());
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| StorageError::failed(aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(size)
    }

    async fn part(&self, number: i32, bytes: Vec<u8>) -> Result<CompletedPart, StorageError> {
        let len = bytes.len() as i64;
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .content_length(len)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| StorageError::failed(aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(out.e_tag().map(str::to_string))
            .build())
    }

    async fn abort(&self) {
        let aborted = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .send()
            .await;
        if let Err(e) = aborted {
            tracing::warn!(key = %self.key, error = %aws_sdk_s3::error::DisplayErrorContext(e), "multipart upload not aborted; retention aborts it later");
        }
    }
}
