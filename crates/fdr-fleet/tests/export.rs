//! The tables read back with the Parquet reader: one row per event of each kind the table
//! holds, the identity on every row, stacks only when the dump has some, row groups
//! bounded on a large dump, and nothing left behind when a dump cannot be exported.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use fdr_analyzer::{EventCx, ReadOptions, Visitor, read_slice};
use fdr_fleet::table::ROW_GROUP_ROWS;
use fdr_fleet::{ExportError, ExportOptions, export_file};
use fdr_format::{EventKind, SampleCause, TaskId};
use fdr_test_support::scenarios::TraceBuilder;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn tmp(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn read(path: &Path) -> (Vec<RecordBatch>, usize) {
    let b = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
    let groups = b.metadata().num_row_groups();
    (b.build().unwrap().map(Result::unwrap).collect(), groups)
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

/// Events per kind, and the stacks' frames, as the analyzer's reader delivers them.
#[derive(Default)]
struct Count {
    kinds: BTreeMap<&'static str, usize>,
    frames: Vec<Vec<u64>>,
}

impl Visitor for Count {
    fn event(&mut self, cx: &EventCx<'_>) {
        *self.kinds.entry(cx.kind.name()).or_default() += 1;
        if let EventKind::Stack { frames, .. } = cx.kind {
            self.frames.push(frames.iter().collect());
        }
    }
}

fn export(bytes: &[u8], dir: &Path, id: &str) -> fdr_fleet::ExportSummary {
    let trace = dir.join(format!("{id}.fdr"));
    std::fs::write(&trace, bytes).unwrap();
    export_file(
        &trace,
        &dir.join("tables"),
        &ExportOptions {
            dump_id: id.into(),
            incident_id: Some("inc-1".into()),
            host: Some("web-7".into()),
            ..ExportOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn every_kind_trace_gives_a_row_per_event_in_each_table() {
    let bytes = fdr_format::testing::every_kind_trace();
    let mut c = Count::default();
    read_slice(&bytes, &mut c, ReadOptions::default()).unwrap();
    let dir = tmp("every-kind");
    let s = export(&bytes, &dir, "every");
    assert!(s.read.error.is_none());
    let names: Vec<&str> = s.tables.iter().map(|t| t.0).collect();
    assert_eq!(names.len(), 11, "{names:?}");
    let table = |t: &str| read(&dir.join("tables").join(t).join("every.parquet")).0;
    for (t, kind) in [
        ("logs", "log"),
        ("wakes", "wake"),
        ("metric_samples", "metric"),
        ("stack_samples", "stack"),
        ("blocks", "block_end"),
        ("polls", "poll_end"),
    ] {
        let b = table(t);
        assert_eq!(rows(&b), c.kinds[kind], "{t}");
        assert!(rows(&b) > 0, "{t}");
        for batch in &b {
            let host = batch.column_by_name("host").unwrap().as_string::<i32>();
            let inc = batch
                .column_by_name("incident_id")
                .unwrap()
                .as_string::<i32>();
            for i in 0..batch.num_rows() {
                assert_eq!(host.value(i), "web-7");
                assert_eq!(inc.value(i), "inc-1");
            }
        }
    }
    let regions = table("regions");
    assert_eq!(
        rows(&regions),
        c.kinds["region_end"] + c.kinds["async_region_end"]
    );
    let stacks = table("stack_samples");
    let frames = stacks[0].column_by_name("frames").unwrap().as_list::<i32>();
    let got: Vec<Vec<u64>> = (0..frames.len())
        .map(|i| {
            frames
                .value(i)
                .as_primitive::<UInt64Type>()
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(got, c.frames);
    assert_eq!(rows(&table("dumps")), 1);
}

/// A CPU sample taken at 20 ms, inside task `alpha`'s poll (10-30 ms), and recorded at
/// 50 ms while `beta` polls on the same thread (its age is 30 ms).
fn late_sample_trace() -> Vec<u8> {
    const MS: u64 = 1_000_000;
    let mut b = TraceBuilder::new();
    let worker = b.thread("worker");
    let sampler = b.thread("fdr-sampler");
    let site = b.site("src/main.rs", 3);
    for (task, name) in [(TaskId(1), "alpha"), (TaskId(2), "beta")] {
        let name = b.string(name);
        b.task(worker, 0, task, name, site);
    }
    b.poll(worker, 10 * MS, 30 * MS, TaskId(1), false);
    b.poll(worker, 40 * MS, 100 * MS, TaskId(2), false);
    b.stack(
        sampler,
        50 * MS,
        worker,
        SampleCause::CpuTimer,
        &[0x1000, 0x2000],
        Some(30 * MS),
    );
    b.build()
}

/// A stack recorded after the poll it was taken in ended has the row of the moment it
/// was taken and of that poll's task, not of the task polled when it was recorded.
#[test]
fn a_late_sample_lands_in_the_poll_it_was_taken_in() {
    let dir = tmp("late-sample");
    let s = export(&late_sample_trace(), &dir, "late");
    assert!(s.read.error.is_none(), "{:?}", s.read.error);
    assert!(s.left_out.is_empty(), "{:?}", s.left_out);
    let (b, _) = read(&dir.join("tables/stack_samples/late.parquet"));
    assert_eq!(rows(&b), 1);
    let ts = b[0]
        .column_by_name("ts_ns")
        .unwrap()
        .as_primitive::<Int64Type>();
    let task = b[0]
        .column_by_name("task_id")
        .unwrap()
        .as_primitive::<UInt64Type>();
    let name = b[0].column_by_name("task_name").unwrap().as_string::<i32>();
    assert_eq!(ts.value(0), 20_000_000, "taken at 20 ms, recorded at 50 ms");
    assert_eq!((task.value(0), name.value(0)), (1, "alpha"));
}

/// Regions that never end on many threads share one budget of open regions, as the
/// analyzer's do; past it the export says what it left out.
#[test]
fn open_regions_on_many_threads_share_one_budget() {
    let mut b = TraceBuilder::new();
    let names: Vec<_> = (0..256).map(|i| b.string(&format!("r{i}"))).collect();
    for t in 0..2_000u64 {
        let th = b.thread(&format!("t{t}"));
        for (i, &name) in names.iter().enumerate() {
            b.push(th, t * 1_000 + i as u64, EventKind::RegionBegin { name });
        }
    }
    let dir = tmp("open-regions");
    let s = export(&b.write_to(Vec::new()).unwrap(), &dir, "open-regions");
    let note = s
        .left_out
        .iter()
        .find(|n| n.contains("MiB of open regions"))
        .unwrap_or_else(|| panic!("no note on open regions in {:?}", s.left_out));
    let count: u64 = note.split(' ').next().unwrap().parse().unwrap();
    assert!(count > 0 && count < 2_000 * 256, "{note}");
}

#[test]
fn a_dump_without_stacks_has_no_stack_table() {
    let bytes = fdr_test_support::scenarios::scenario("healthy").unwrap();
    let dir = tmp("no-stacks");
    let s = export(&bytes, &dir, "healthy");
    assert_eq!(s.tables.len(), 10);
    assert!(!dir.join("tables/stack_samples/healthy.parquet").exists());
    assert!(dir.join("tables/polls/healthy.parquet").is_file());
}

#[test]
fn row_groups_are_closed_as_they_fill() {
    let bytes = fdr_test_support::scenarios::scenario("healthy").unwrap();
    let mut c = Count::default();
    read_slice(&bytes, &mut c, ReadOptions::default()).unwrap();
    let dir = tmp("row-groups");
    let trace = dir.join("healthy.fdr");
    std::fs::write(&trace, &bytes).unwrap();
    const ROWS: usize = 300;
    export_file(
        &trace,
        &dir.join("tables"),
        &ExportOptions {
            dump_id: "healthy".into(),
            row_group_rows: Some(ROWS),
            ..ExportOptions::default()
        },
    )
    .unwrap();
    let path = dir.join("tables/polls/healthy.parquet");
    let b = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
    let sizes: Vec<i64> = b
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows())
        .collect();
    let total: i64 = sizes.iter().sum();
    assert_eq!(total as usize, c.kinds["poll_end"]);
    assert!(total as usize > 3 * ROWS, "{total} polls");
    assert!(sizes.iter().all(|&n| n as usize <= ROWS), "{sizes:?}");
    assert_eq!(sizes.len(), (total as usize).div_ceil(ROWS), "{sizes:?}");
    assert_eq!(ROW_GROUP_ROWS, 128 * 1024);
}

#[test]
fn what_cannot_be_exported_leaves_nothing_behind() {
    let dir = tmp("refused");
    let trace = dir.join("x.fdr");
    std::fs::write(&trace, b"not a trace at all").unwrap();
    let out = dir.join("tables");
    let opts = ExportOptions {
        dump_id: "x".into(),
        ..ExportOptions::default()
    };
    let e = export_file(&trace, &out, &opts).unwrap_err();
    assert!(matches!(e, ExportError::Trace(_)), "{e}");
    let left: Vec<_> = walk(&out);
    assert!(left.is_empty(), "{left:?}");
    assert!(!out.exists(), "the directory it made stays");
    for bad in ["", "../x", ".x", "a/b"] {
        let opts = ExportOptions {
            dump_id: bad.into(),
            ..ExportOptions::default()
        };
        let e = export_file(&trace, &out, &opts).unwrap_err();
        assert!(matches!(e, ExportError::BadDumpId(_)), "{bad}: {e}");
    }
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(d).into_iter().flatten() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(walk(&p));
        } else {
            v.push(p);
        }
    }
    v
}
