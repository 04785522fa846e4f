//! Writes rows as they arrive, to a scratch file or straight into a streaming S3 upload: CSV
//! with the `csv` crate (RFC 4180, UTF-8, header row), XLSX with `rust_xlsxwriter` in
//! constant-memory mode (each row goes to a temp file at once; memory does not grow with the
//! row count). Writing is synchronous and CPU
//! bound, so it runs on a blocking thread fed through a small bounded channel: the database
//! stream and the writer run side by side, and a slow writer slows the reader instead of
//! filling memory.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use rust_xlsxwriter::{Format, FormatAlign, Workbook, XlsxError};
use tokio::sync::mpsc;

use super::{
    table::{cents_text, excel_serial, timestamp_text, Cell, Column, Row},
    Format as FileFormat,
};
use crate::storage::stream::PartWriter;

/// Where the bytes go.
pub enum Output {
    File(PathBuf),
    /// A multipart upload in progress (S3).
    Stream(PartWriter),
}

/// Rows per channel message, and messages buffered: bounds what sits between the reader and
/// the writer to a few thousand rows.
pub const CHUNK_ROWS: usize = 2_000;
const CHUNKS_BUFFERED: usize = 4;

/// Excel's limit is 1,048,576 rows per sheet; past it the export continues on a new sheet
/// (with the header again).
const XLSX_ROWS_PER_SHEET: u32 = 1_048_575;

/// `None` marks the end of the rows; a channel closed without it means "abandoned" (cancel or
/// failure upstream): nothing more is written, not even the XLSX package.
type Msg = Option<Vec<Row>>;

const ABANDONED: &str = "abandoned before the end of the rows";

/// Handle of a running writer: send chunks, then [`Writer::finish`].
pub struct Writer {
    tx: Option<mpsc::Sender<Msg>>,
    join: tokio::task::JoinHandle<Result<(u64, u64), String>>,
}

impl Writer {
    /// Starts writing `columns` as `format` into `output`; the XLSX writer keeps its sheet
    /// data under `scratch`.
    pub fn spawn(
        format: FileFormat,
        sheet: &str,
        columns: &'static [Column],
        output: Output,
        scratch: PathBuf,
        xlsx_zip_level: u8,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<Msg>(CHUNKS_BUFFERED);
        let sheet = sheet.to_string();
        let join = tokio::task::spawn_blocking(move || {
            let rows = |w: &mut dyn WriteSend| match format {
                FileFormat::Csv => write_csv(columns, w, rx).map_err(|e| e.to_string()),
                FileFormat::Xlsx => write_xlsx(
                    &sheet,
                    columns,
                    w,
                    &scratch,
                    xlsx_zip_level,
                    XLSX_ROWS_PER_SHEET,
                    rx,
                )
                .map_err(|e| e.to_string()),
            };
            match output {
                Output::File(path) => {
                    let file = File::create(&path).map_err(|e| e.to_string())?;
                    let mut w = BufWriter::with_capacity(1 << 20, file);
                    let n = rows(&mut w)?;
                    w.flush().map_err(|e| e.to_string())?;
                    w.get_ref().sync_all().map_err(|e| e.to_string())?;
                    let bytes = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
                    Ok((n, bytes))
                }
                Output::Stream(part_writer) => {
                    let mut w = BufWriter::with_capacity(1 << 20, part_writer);
                    let n = rows(&mut w)?;
                    let part_writer = w.into_inner().map_err(|e| e.to_string())?;
                    let bytes = part_writer.finish().map_err(|e| e.to_string())?;
                    Ok((n, bytes))
                }
            }
        });
        Self { tx: Some(tx), join }
    }

    /// Hands a chunk to the writer (waits while it is behind). `false` if the writer stopped
    /// (its error comes from `finish`).
    pub async fn send(&self, rows: Vec<Row>) -> bool {
        match &self.tx {
            Some(tx) => tx.send(Some(rows)).await.is_ok(),
            None => false,
        }
    }

    /// Closes the stream and waits for the file: the data rows and the bytes written.
    pub async fn finish(mut self) -> Result<(u64, u64), String> {
        if let Some(tx) = self.tx.take() {
            // If the writer already stopped, its own error comes out of the join below.
            let _ = tx.send(None).await;
        }
        match self.join.await {
            Ok(r) => r,
            Err(e) => Err(format!("writer thread: {e}")),
        }
    }

    /// Stops without finishing (cancel, failure): the writer sees the closed channel and
    /// ends; the caller removes the file.
    pub async fn abandon(mut self) {
        self.tx.take();
        let _ = self.join.await;
    }
}

/// `Write + Send` as one trait object (the XLSX writer wants a `Send` sink).
pub trait WriteSend: Write + Send {}
impl<W: Write + Send> WriteSend for W {}

fn write_csv(
    columns: &[Column],
    out: &mut dyn WriteSend,
    mut rx: mpsc::Receiver<Msg>,
) -> Result<u64, csv::Error> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF) // RFC 4180 line ends
        .from_writer(out);
    w.write_record(columns.iter().map(|c| c.name))?;
    let mut rows = 0u64;
    let mut int = String::with_capacity(24);
    loop {
        let chunk = match rx.blocking_recv() {
            Some(Some(chunk)) => chunk,
            Some(None) => break,
            None => return Err(std::io::Error::other(ABANDONED).into()),
        };
        for row in chunk {
            for cell in &row {
                match cell {
                    Cell::Null => w.write_field("")?,
                    Cell::Text(s) => w.write_field(s)?,
                    Cell::Uuid(u) => w.write_field(
                        u.hyphenated()
                            .encode_lower(&mut uuid::Uuid::encode_buffer()),
                    )?,
                    Cell::Int(v) => {
                        int.clear();
                        use std::fmt::Write as _;
                        let _ = write!(int, "{v}");
                        w.write_field(&int)?
                    }
                    Cell::Money(c) => w.write_field(cents_text(*c))?,
                    Cell::DateTime(t) => w.write_field(timestamp_text(t))?,
                }
            }
            w.write_record(None::<&[u8]>)?;
            rows += 1;
        }
    }
    w.flush()?;
    Ok(rows)
}

struct XlsxFormats {
    header: Format,
    money: Format,
    date: Format,
}

fn start_sheet(
    wb: &mut Workbook,
    name: &str,
    columns: &[Column],
    formats: &XlsxFormats,
) -> Result<(), XlsxError> {
    let ws = wb.add_worksheet_with_constant_memory()?;
    ws.set_name(name)?;
    ws.set_freeze_panes(1, 0)?;
    for (i, c) in columns.iter().enumerate() {
        ws.set_column_width(i as u16, c.width)?;
        ws.write_string_with_format(0, i as u16, c.name, &formats.header)?;
    }
    Ok(())
}

fn write_xlsx(
    sheet: &str,
    columns: &[Column],
    out: &mut dyn WriteSend,
    scratch: &Path,
    zip_level: u8,
    rows_per_sheet: u32,
    mut rx: mpsc::Receiver<Msg>,
) -> Result<u64, XlsxError> {
    let mut wb = Workbook::new();
    wb.set_tempdir(scratch)?;
    // EXPORT_XLSX_ZIP_LEVEL, default 3: ~1.3x faster than the crate's 6 for a ~7 % larger
    // file (shared/notes/export-writers.md; BENCHMARKS.md for 1).
    wb.set_zip_compression_level(zip_level);
    let formats = XlsxFormats {
        header: Format::new().set_bold().set_align(FormatAlign::Center),
        money: Format::new().set_num_format("#,##0.00"),
        date: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
    };
    let mut sheets = 1usize;
    start_sheet(&mut wb, sheet, columns, &formats)?;
    let mut row_in_sheet: u32 = 0;
    let mut rows = 0u64;
    loop {
        let chunk = match rx.blocking_recv() {
            Some(Some(chunk)) => chunk,
            Some(None) => break,
            None => return Err(XlsxError::ParameterError(ABANDONED.into())),
        };
        for row in chunk {
            if row_in_sheet == rows_per_sheet {
                sheets += 1;
                start_sheet(&mut wb, &format!("{sheet} ({sheets})"), columns, &formats)?;
                row_in_sheet = 0;
            }
            row_in_sheet += 1;
            let ws = wb.worksheet_from_index(sheets - 1)?;
            for (i, cell) in row.iter().enumerate() {
                let c = i as u16;
                let r = row_in_sheet;
                match cell {
                    Cell::Null => {}
                    Cell::Text(s) => {
                        ws.write_string(r, c, s)?;
                    }
                    Cell::Uuid(u) => {
                        ws.write_string(
                            r,
                            c,
                            u.hyphenated()
                                .encode_lower(&mut uuid::Uuid::encode_buffer()),
                        )?;
                    }
                    Cell::Int(v) => {
                        ws.write_number(r, c, *v as f64)?;
                    }
                    Cell::Money(cents) => {
                        ws.write_number_with_format(r, c, *cents as f64 / 100.0, &formats.money)?;
                    }
                    Cell::DateTime(t) => {
                        ws.write_number_with_format(r, c, excel_serial(t), &formats.date)?;
                    }
                }
            }
            rows += 1;
        }
    }
    // Packing (deflating the sheet data into the zip) starts only after the last row and
    // runs on this one thread: logged apart from the rows, it is the XLSX's fixed tail.
    let packing = std::time::Instant::now();
    wb.save_to_writer(out)?;
    tracing::info!(
        rows,
        pack_ms = packing.elapsed().as_millis() as u64,
        "xlsx packed"
    );
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use calamine::{Data, DataType, Reader};

    use super::*;
    use crate::exports::table::{col, ColumnKind};

    const COLUMNS: &[Column] = &[
        col("n", ColumnKind::Int, 6),
        col("amount", ColumnKind::Money, 10),
        col("who", ColumnKind::Text, 10),
    ];

    fn rows(n: i64) -> Vec<Row> {
        (1..=n)
            .map(|i| {
                vec![
                    Cell::Int(i),
                    Cell::Money(i * 150),
                    Cell::Text(format!("r{i}")),
                ]
            })
            .collect()
    }

    #[test]
    fn xlsx_continues_on_new_sheets_past_the_row_limit() {
        let (tx, rx) = mpsc::channel::<Msg>(4);
        tx.blocking_send(Some(rows(4))).unwrap();
        tx.blocking_send(Some(rows(7).split_off(4))).unwrap();
        tx.blocking_send(None).unwrap();
        let scratch = std::env::temp_dir();
        let mut out = Vec::new();
        let n = write_xlsx("ledger", COLUMNS, &mut out, &scratch, 3, 3, rx).unwrap();
        assert_eq!(n, 7);
        let mut wb = calamine::Xlsx::new(std::io::Cursor::new(out)).unwrap();
        assert_eq!(wb.sheet_names(), ["ledger", "ledger (2)", "ledger (3)"]);
        let mut seen = Vec::new();
        for name in wb.sheet_names() {
            let range = wb.worksheet_range(&name).unwrap();
            let mut it = range.rows();
            let header: Vec<String> = it.next().unwrap().iter().map(|c| c.to_string()).collect();
            assert_eq!(header, ["n", "amount", "who"], "header repeated on {name}");
            for r in it {
                assert_eq!(r[1], Data::Float(r[0].as_f64().unwrap() * 1.5));
                seen.push(r[0].as_f64().unwrap() as i64);
            }
        }
        assert_eq!(
            seen,
            (1..=7).collect::<Vec<_>>(),
            "every row once, in order"
        );
    }

    #[test]
    fn abandoned_writer_produces_nothing() {
        let (tx, rx) = mpsc::channel::<Msg>(4);
        tx.blocking_send(Some(rows(2))).unwrap();
        drop(tx);
        let mut out = Vec::new();
        let err = write_csv(COLUMNS, &mut out, rx).unwrap_err();
        assert!(err.to_string().contains("abandoned"), "{err}");
    }
}
