//! One table's Parquet file while it is written: rows gathered into Arrow column builders,
//! handed to the Parquet writer every [`BATCH_ROWS`] rows or [`BATCH_MAX_BYTES`] of strings
//! and frames, and row groups closed at
//! [`ROW_GROUP_ROWS`] rows or [`ROW_GROUP_MAX_BYTES`] bytes, so memory stays bounded
//! whatever the dump's size.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Float64Builder, Int64Builder, ListBuilder, StringBuilder,
    UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{Field, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::error::ExportError;
use crate::schema::{IDENTITY, TableDef, Ty};

/// Rows gathered before they are handed to the Parquet writer.
pub const BATCH_ROWS: usize = 8192;
/// Bytes of strings and stack frames gathered before they are handed to the Parquet writer,
/// whatever the rows: a dump whose names or messages are long (up to 64 KiB each) would
/// otherwise gather [`BATCH_ROWS`] of them, hundreds of megabytes.
pub const BATCH_MAX_BYTES: usize = 4 << 20;
/// Rows in a row group at most.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;
/// Encoded bytes of a row group in progress at most (per table), before it is written out.
pub const ROW_GROUP_MAX_BYTES: usize = 16 << 20;

/// One value of a row, in column order.
#[derive(Debug, Clone, Copy)]
pub(crate) enum V<'a> {
    U64(Option<u64>),
    I64(Option<i64>),
    F64(f64),
    Str(Option<&'a str>),
    Bool(bool),
    /// The frames of a stack.
    Frames(fdr_format::StackFrames<'a>),
}

enum Col {
    U64(UInt64Builder),
    I64(Int64Builder),
    F64(Float64Builder),
    Str(StringBuilder),
    Bool(BooleanBuilder),
    U64List(ListBuilder<UInt64Builder>),
}

impl Col {
    fn new(ty: Ty) -> Col {
        match ty {
            Ty::U64 => Col::U64(UInt64Builder::with_capacity(BATCH_ROWS)),
            Ty::I64 => Col::I64(Int64Builder::with_capacity(BATCH_ROWS)),
            Ty::F64 => Col::F64(Float64Builder::with_capacity(BATCH_ROWS)),
            Ty::Str => Col::Str(StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 16)),
            Ty::Bool => Col::Bool(BooleanBuilder::with_capacity(BATCH_ROWS)),
            Ty::U64List => Col::U64List(ListBuilder::new(UInt64Builder::new()).with_field(
                Arc::new(Field::new_list_field(arrow_schema::DataType::UInt64, false)),
            )),
        }
    }

    fn push(&mut self, v: V<'_>) {
        match (self, v) {
            (Col::U64(b), V::U64(x)) => b.append_option(x),
            (Col::I64(b), V::I64(x)) => b.append_option(x),
            (Col::F64(b), V::F64(x)) => b.append_value(x),
            (Col::Str(b), V::Str(x)) => b.append_option(x),
            (Col::Bool(b), V::Bool(x)) => b.append_value(x),
            (Col::U64List(b), V::Frames(f)) => {
                b.values().extend(f.iter().map(Some));
                b.append(true);
            }
            (_, v) => unreachable!("a value of the wrong type for its column: {v:?}"),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Col::U64(b) => Arc::new(b.finish()),
            Col::I64(b) => Arc::new(b.finish()),
            Col::F64(b) => Arc::new(b.finish()),
            Col::Str(b) => Arc::new(b.finish()),
            Col::Bool(b) => Arc::new(b.finish()),
            Col::U64List(b) => Arc::new(b.finish()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Col::U64(b) => b.len(),
            Col::I64(b) => b.len(),
            Col::F64(b) => b.len(),
            Col::Str(b) => b.len(),
            Col::Bool(b) => b.len(),
            Col::U64List(b) => b.len(),
        }
    }
}

/// The identity every row of a dump carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The host (by default the trace header's).
    pub host: String,
    /// The service (by default the trace header's).
    pub service: String,
    /// The dump's id.
    pub dump_id: String,
    /// The incident's id, when the dump is one.
    pub incident_id: Option<String>,
}

/// A table's file being written: to a temporary name beside its final one, renamed into
/// place by [`TableFile::finish`].
pub(crate) struct TableFile {
    def: &'static TableDef,
    schema: SchemaRef,
    cols: Vec<Col>,
    writer: Option<ArrowWriter<BufWriter<File>>>,
    tmp: PathBuf,
    path: PathBuf,
    /// Rows written, those still gathered included.
    pub(crate) rows: u64,
    /// Bytes of the strings and frames gathered since the last batch.
    gathered_bytes: usize,
}

impl TableFile {
    /// Creates `dir/TABLE/DUMP.parquet`'s temporary file, whose row groups hold at most
    /// `row_group_rows` rows.
    pub(crate) fn create(
        def: &'static TableDef,
        dir: &Path,
        dump_id: &str,
        row_group_rows: usize,
    ) -> Result<TableFile, ExportError> {
        let table_dir = dir.join(def.name);
        std::fs::create_dir_all(&table_dir).map_err(|e| ExportError::io(&table_dir, e))?;
        let path = table_dir.join(format!("{dump_id}.parquet"));
        let tmp = table_dir.join(format!(".{dump_id}.parquet.tmp-{}", std::process::id()));
        let file = File::create(&tmp).map_err(|e| ExportError::io(&tmp, e))?;
        let schema = def.schema();
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(row_group_rows))
            .set_max_row_group_bytes(Some(ROW_GROUP_MAX_BYTES))
            .set_created_by(format!("fdr {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = ArrowWriter::try_new(BufWriter::new(file), schema.clone(), Some(props))
            .map_err(|e| ExportError::parquet(&tmp, e))?;
        let cols = def.columns.iter().map(|c| Col::new(c.ty)).collect();
        Ok(TableFile {
            def,
            schema,
            cols,
            writer: Some(writer),
            tmp,
            path,
            rows: 0,
            gathered_bytes: 0,
        })
    }

    /// Adds a row (the table's own columns, in order), writing a batch when it fills.
    pub(crate) fn push(&mut self, id: &Identity, row: &[V<'_>]) -> Result<(), ExportError> {
        assert_eq!(
            row.len(),
            self.cols.len(),
            "a row of {} columns for table {}",
            row.len(),
            self.def.name
        );
        for (c, v) in self.cols.iter_mut().zip(row) {
            self.gathered_bytes += match v {
                V::Str(Some(s)) => s.len(),
                V::Frames(f) => f.len() * size_of::<u64>(),
                _ => 0,
            };
            c.push(*v);
        }
        self.rows += 1;
        if self.cols[0].len() >= BATCH_ROWS || self.gathered_bytes >= BATCH_MAX_BYTES {
            self.write_batch(id)?;
        }
        Ok(())
    }

    fn write_batch(&mut self, id: &Identity) -> Result<(), ExportError> {
        self.gathered_bytes = 0;
        let n = self.cols.first().map_or(0, Col::len);
        if n == 0 {
            return Ok(());
        }
        let constant = |s: Option<&str>| -> ArrayRef {
            Arc::new(std::iter::repeat_n(s, n).collect::<StringArray>())
        };
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(IDENTITY.len() + self.cols.len());
        arrays.push(constant(Some(&id.host)));
        arrays.push(constant(Some(&id.service)));
        arrays.push(constant(Some(&id.dump_id)));
        arrays.push(constant(id.incident_id.as_deref()));
        arrays.extend(self.cols.iter_mut().map(Col::finish));
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(|e| ExportError::Arrow(self.def.name, e))?;
        let w = self.writer.as_mut().expect("open until finished");
        w.write(&batch)
            .map_err(|e| ExportError::parquet(&self.tmp, e))
    }

    /// Writes what is gathered, closes the file and renames it into place; a table that is
    /// written only when it has rows and has none is removed instead. Returns the final
    /// path, if any.
    pub(crate) fn finish(mut self, id: &Identity) -> Result<Option<PathBuf>, ExportError> {
        self.write_batch(id)?;
        let w = self.writer.take().expect("open until finished");
        let inner = w
            .into_inner()
            .map_err(|e| ExportError::parquet(&self.tmp, e))?;
        let file = inner
            .into_inner()
            .map_err(|e| ExportError::io(&self.tmp, e.into_error()))?;
        if self.rows == 0 && !self.def.always {
            drop(file);
            let _ = std::fs::remove_file(&self.tmp);
            let _ = std::fs::remove_file(&self.path);
            return Ok(None);
        }
        file.sync_all().map_err(|e| ExportError::io(&self.tmp, e))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(|e| ExportError::io(&self.path, e))?;
        Ok(Some(self.path.clone()))
    }
}

impl Drop for TableFile {
    fn drop(&mut self) {
        // Not finished (an error elsewhere): nothing half-written stays behind.
        if self.writer.is_some() {
            self.writer = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::LOGS;

    /// The `logs` row of a message `message`.
    fn log_row(message: &str) -> [V<'_>; 6] {
        [
            V::I64(Some(1)),
            V::I64(Some(1)),
            V::U64(None),
            V::Str(None),
            V::Str(Some("category")),
            V::Str(Some(message)),
        ]
    }

    #[test]
    fn long_strings_are_handed_over_at_the_byte_bound_not_the_row_count() {
        let dir = std::env::temp_dir().join(format!("fdr-fleet-bound-{}", std::process::id()));
        let id = Identity::default();
        let mut t = TableFile::create(&LOGS, &dir, "d", ROW_GROUP_ROWS).unwrap();
        let long = "x".repeat(64 << 10);
        let mut most = 0;
        for _ in 0..200 {
            t.push(&id, &log_row(&long)).unwrap();
            most = most.max(t.cols[0].len());
        }
        // 64 KiB messages: handed over as the gathered strings reach 4 MiB, not at 8192
        // rows (`most` is what is left gathered after a push).
        let row_bytes = long.len() + "category".len();
        assert_eq!(most, BATCH_MAX_BYTES.div_ceil(row_bytes) - 1);
        assert!(t.gathered_bytes < BATCH_MAX_BYTES);
        // Short rows still go by the row count.
        for _ in 0..BATCH_ROWS {
            t.push(&id, &log_row("short")).unwrap();
        }
        assert!(t.cols[0].len() < BATCH_ROWS);
        let path = t
            .finish(&id)
            .unwrap()
            .expect("the logs table is always written");
        assert!(std::fs::metadata(&path).unwrap().len() > 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
