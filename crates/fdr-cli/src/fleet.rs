//! `fdr export --format parquet -o DIR TRACE`: the dump as Parquet tables (fdr-fleet),
//! feature `fleet`.

use std::path::Path;

use anyhow::Result;
use fdr_fleet::{ExportError, ExportOptions, export_file, valid_dump_id};

use crate::exit::{Usage, open_err};
use crate::input::{self, shown};
use crate::output::note;

/// Exports `trace` into `dir/TABLE/DUMP_ID.parquet`, the dump id being the file's name
/// without `.fdr`, and the incident id the same when the sentinel's sidecar `ID.json` is
/// beside it.
pub(crate) fn export(trace: &Path, dir: Option<&Path>) -> Result<()> {
    let Some(dir) = dir.filter(|d| !input::is_stdin(d)) else {
        return Err(
            Usage("--format parquet writes a directory of tables: give -o DIR".into()).into(),
        );
    };
    if input::is_stdin(trace) {
        return Err(Usage(
            "--format parquet names the tables' files after the dump: give the dump as a file, not -"
                .into(),
        )
        .into());
    }
    let dump_id = trace
        .file_name()
        .and_then(|n| n.to_str())
        .map(|n| n.strip_suffix(".fdr").unwrap_or(n))
        .unwrap_or_default()
        .to_string();
    if !valid_dump_id(&dump_id) {
        return Err(Usage(format!(
            "{}: its name is the dump id of the tables' files and must be letters, digits, '.', '_' and '-' (at most 200 bytes, not starting with '.')",
            shown(trace)
        ))
        .into());
    }
    let sidecar = trace.with_file_name(format!("{dump_id}.json"));
    let incident_id = sidecar.is_file().then(|| dump_id.clone());
    let opts = ExportOptions {
        dump_id,
        incident_id,
        ..ExportOptions::default()
    };
    let s = match export_file(trace, dir, &opts) {
        Ok(s) => s,
        Err(ExportError::Trace(e)) => return Err(open_err(e, &shown(trace))),
        Err(e) => {
            return Err(
                anyhow::Error::new(e).context(format!("exporting {} as Parquet", shown(trace)))
            );
        }
    };
    note(&format!(
        "wrote {} rows in {} tables to {}",
        s.rows,
        s.tables.len(),
        dir.display()
    ));
    for l in &s.left_out {
        note(&format!("left out: {l}"));
    }
    crate::check(trace, s.read.error.as_ref())
}
