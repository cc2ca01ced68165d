//! The tables' schemas: every column's name, type, whether it may be null, and what it
//! means. `docs/TABLES.md` is rendered from here ([`markdown`]; a test keeps it equal).

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};

/// A column's type, as written to Parquet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// `UInt64` (Parquet `INT64`, unsigned): ids.
    U64,
    /// `Int64` (Parquet `INT64`): nanoseconds, counts.
    I64,
    /// `Float64`: metric values, scores.
    F64,
    /// `Utf8` (Parquet `BYTE_ARRAY`, string).
    Str,
    /// `Boolean`.
    Bool,
    /// A list of `UInt64`: a stack's addresses.
    U64List,
}

impl Ty {
    fn data_type(self) -> DataType {
        match self {
            Ty::U64 => DataType::UInt64,
            Ty::I64 => DataType::Int64,
            Ty::F64 => DataType::Float64,
            Ty::Str => DataType::Utf8,
            Ty::Bool => DataType::Boolean,
            Ty::U64List => DataType::List(Arc::new(Field::new_list_field(DataType::UInt64, false))),
        }
    }

    fn sql(self) -> &'static str {
        match self {
            Ty::U64 => "UBIGINT",
            Ty::I64 => "BIGINT",
            Ty::F64 => "DOUBLE",
            Ty::Str => "VARCHAR",
            Ty::Bool => "BOOLEAN",
            Ty::U64List => "UBIGINT[]",
        }
    }
}

/// One column.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Its name (units last: `_ns`, `_unix_ns`).
    pub name: &'static str,
    /// Its type.
    pub ty: Ty,
    /// Whether it may be null.
    pub nullable: bool,
    /// What it holds.
    pub doc: &'static str,
}

const fn col(name: &'static str, ty: Ty, doc: &'static str) -> Column {
    Column {
        name,
        ty,
        nullable: false,
        doc,
    }
}

const fn opt(name: &'static str, ty: Ty, doc: &'static str) -> Column {
    Column {
        name,
        ty,
        nullable: true,
        doc,
    }
}

/// The identity columns every row of every table starts with.
pub const IDENTITY: [Column; 4] = [
    col(
        "host",
        Ty::Str,
        "The host that recorded the dump (the trace header's; empty when it names none).",
    ),
    col(
        "service",
        Ty::Str,
        "The service that recorded the dump (the trace header's; empty when it names none).",
    ),
    col(
        "dump_id",
        Ty::Str,
        "The dump: its file name without `.fdr` (an incident's id for the sentinel's dumps).",
    ),
    opt(
        "incident_id",
        Ty::Str,
        "The sentinel's incident the dump belongs to (its sidecar `ID.json` beside it); null for a dump that is no incident.",
    ),
];

/// A table: its name (the directory its files go into) and its own columns, after
/// [`IDENTITY`].
#[derive(Debug, Clone, Copy)]
pub struct TableDef {
    /// The table's name.
    pub name: &'static str,
    /// What a row is.
    pub doc: &'static str,
    /// The columns after the identity columns.
    pub columns: &'static [Column],
    /// Whether the file is written when the dump has no row for it.
    pub always: bool,
}

impl TableDef {
    /// Every column, identity columns first.
    pub fn all_columns(&self) -> impl Iterator<Item = &'static Column> {
        IDENTITY.iter().chain(self.columns.iter())
    }

    /// The Arrow schema.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.all_columns()
                .map(|c| Field::new(c.name, c.ty.data_type(), c.nullable))
                .collect::<Vec<_>>(),
        ))
    }
}

/// `dumps`: one row per dump.
pub const DUMPS: TableDef = TableDef {
    name: "dumps",
    doc: "One row per dump: the process that recorded it and the span of time it covers. Join on `dump_id` to turn any table's `_ns` (nanoseconds since the trace's first event) into wall-clock time: `wall_origin_unix_ns + x_ns`.",
    always: true,
    columns: &[
        col(
            "service_version",
            Ty::Str,
            "The service's version (empty when unknown).",
        ),
        col("program", Ty::Str, "The executable's name."),
        col("pid", Ty::I64, "The process id."),
        opt(
            "process_start_unix_ns",
            Ty::I64,
            "When the process started, ns since the Unix epoch (null when unknown).",
        ),
        opt(
            "recording_start_unix_ns",
            Ty::I64,
            "When recording started, ns since the Unix epoch (null when unknown).",
        ),
        opt(
            "wall_origin_unix_ns",
            Ty::I64,
            "The wall-clock time of `_ns` 0, ns since the Unix epoch (null when the trace has no clock record).",
        ),
        col("fdr_version", Ty::Str, "The fdr version that recorded it."),
        col(
            "build_id",
            Ty::Str,
            "The executable's GNU build id, hex (empty when unknown).",
        ),
        col(
            "duration_ns",
            Ty::I64,
            "From the first to the last event, ns.",
        ),
        col("events", Ty::I64, "Events read."),
        opt(
            "read_error",
            Ty::Str,
            "Why reading stopped before the end (a damaged dump: every table holds what came before); null when it was read whole.",
        ),
    ],
};

/// `tasks`: one row per task.
pub const TASKS: TableDef = TableDef {
    name: "tasks",
    doc: "One row per task (async or user) seen in the dump, written when it ends or, for tasks alive at the end, at the end.",
    always: true,
    columns: &[
        col(
            "task_id",
            Ty::U64,
            "The task's id (unique within a process run).",
        ),
        opt(
            "parent_task_id",
            Ty::U64,
            "The task that created it (null: none, or its creation is not in the dump).",
        ),
        opt(
            "kind",
            Ty::Str,
            "`async` (a future, polled) or `user` (begun and ended on one thread); null when its creation is not in the dump.",
        ),
        opt(
            "name",
            Ty::Str,
            "The task's name (null when its creation is not in the dump).",
        ),
        opt(
            "spawn_site",
            Ty::Str,
            "Where it was spawned, `file:line:col` (null when not recorded).",
        ),
        opt(
            "created_ns",
            Ty::I64,
            "When it was created (null when before the dump).",
        ),
        opt(
            "ended_ns",
            Ty::I64,
            "When it was dropped or ended (null: alive at the dump's end).",
        ),
        col("polls", Ty::I64, "Its polls that started in the dump."),
        col(
            "running_ns",
            Ty::I64,
            "Time polled: the sum of its rows' `duration_ns` in `polls`.",
        ),
    ],
};

/// `polls`: one row per finished poll.
pub const POLLS: TableDef = TableDef {
    name: "polls",
    doc: "One row per poll of an async task whose start and end are both in the dump.",
    always: true,
    columns: &[
        col("task_id", Ty::U64, "The polled task."),
        opt("task_name", Ty::Str, "Its name (null when unknown)."),
        col(
            "thread_id",
            Ty::I64,
            "fdr's id of the thread that polled it.",
        ),
        col("start_ns", Ty::I64, "Poll start."),
        col("end_ns", Ty::I64, "Poll end."),
        col("duration_ns", Ty::I64, "`end_ns - start_ns`."),
        col(
            "ready",
            Ty::Bool,
            "Whether the poll returned `Ready` (the task completed).",
        ),
    ],
};

/// `awaits`: one row per `Pending` poll.
pub const AWAITS: TableDef = TableDef {
    name: "awaits",
    doc: "One row per await: from a poll that returned `Pending` to the wake that ended it and the next poll.",
    always: true,
    columns: &[
        col("task_id", Ty::U64, "The awaiting task."),
        opt("task_name", Ty::Str, "Its name (null when unknown)."),
        col("start_ns", Ty::I64, "The end of the `Pending` poll."),
        opt(
            "woken_ns",
            Ty::I64,
            "The wake that ended it (the poll's end when it was woken during the poll; null: not woken in the dump).",
        ),
        opt(
            "polled_ns",
            Ty::I64,
            "The start of the next poll (null: none in the dump).",
        ),
        opt(
            "wait_ns",
            Ty::I64,
            "`woken_ns - start_ns`: the time awaited.",
        ),
        opt(
            "sched_delay_ns",
            Ty::I64,
            "`polled_ns - woken_ns`: woken but not yet polled.",
        ),
        opt(
            "waker_task_id",
            Ty::U64,
            "The task that woke it (null: a thread outside any task, or not woken).",
        ),
        opt(
            "waker_thread_id",
            Ty::I64,
            "The thread that woke it (null: not woken).",
        ),
    ],
};

/// `regions`: one row per finished region.
pub const REGIONS: TableDef = TableDef {
    name: "regions",
    doc: "One row per region whose begin and end are both in the dump: `sync` regions (on one thread) and `async` regions (a task's phase across awaits).",
    always: true,
    columns: &[
        col("kind", Ty::Str, "`sync` or `async`."),
        col("name", Ty::Str, "The region's name."),
        opt(
            "task_id",
            Ty::U64,
            "The task it belongs to (null: a plain thread).",
        ),
        opt("task_name", Ty::Str, "Its name (null when unknown)."),
        col(
            "thread_id",
            Ty::I64,
            "The thread it began on (a `sync` region's only thread).",
        ),
        opt(
            "region_id",
            Ty::U64,
            "An `async` region's id (null for `sync`).",
        ),
        col(
            "depth",
            Ty::I64,
            "Nesting depth on its thread (0: outermost); 0 for `async`.",
        ),
        col("start_ns", Ty::I64, "Begin."),
        col("end_ns", Ty::I64, "End."),
        col("duration_ns", Ty::I64, "`end_ns - start_ns`."),
    ],
};

/// `blocks`: one row per finished block (lock waits among them).
pub const BLOCKS: TableDef = TableDef {
    name: "blocks",
    doc: "One row per time a thread blocked (contended locks: `mutex`, `rwlock`, `condvar`; `channel`, `io`, `sleep`, `other`), begin and end in the dump.",
    always: true,
    columns: &[
        col(
            "reason",
            Ty::Str,
            "`mutex`, `rwlock`, `condvar`, `channel`, `io`, `sleep`, `other` or `unknown`.",
        ),
        col(
            "lock_wait",
            Ty::Bool,
            "Whether it waited for a lock (`mutex`, `rwlock` or `condvar`).",
        ),
        col(
            "site",
            Ty::Str,
            "Where it blocked, `file:line:col` (`-` when not recorded).",
        ),
        opt(
            "task_id",
            Ty::U64,
            "The task current on the thread (null: none).",
        ),
        opt("task_name", Ty::Str, "Its name (null when unknown)."),
        col("thread_id", Ty::I64, "The blocked thread."),
        col("start_ns", Ty::I64, "Begin."),
        col("end_ns", Ty::I64, "End."),
        col("duration_ns", Ty::I64, "`end_ns - start_ns`."),
    ],
};

/// `logs`: one row per log line.
pub const LOGS: TableDef = TableDef {
    name: "logs",
    doc: "One row per log line.",
    always: true,
    columns: &[
        col("ts_ns", Ty::I64, "When."),
        col("thread_id", Ty::I64, "The thread that logged it."),
        opt(
            "task_id",
            Ty::U64,
            "The task current on the thread (null: none).",
        ),
        opt("task_name", Ty::Str, "Its name (null when unknown)."),
        col("category", Ty::Str, "The category (a `tracing` target)."),
        col(
            "message",
            Ty::Str,
            "The message (invalid UTF-8 replaced by U+FFFD).",
        ),
    ],
};

/// `wakes`: one row per wake.
pub const WAKES: TableDef = TableDef {
    name: "wakes",
    doc: "One row per wake of an async task.",
    always: true,
    columns: &[
        col("ts_ns", Ty::I64, "When."),
        col("task_id", Ty::U64, "The woken task."),
        opt("task_name", Ty::Str, "Its name (null when unknown)."),
        opt(
            "waker_task_id",
            Ty::U64,
            "The waking task (null: a thread outside any task).",
        ),
        opt("waker_task_name", Ty::Str, "Its name (null when unknown)."),
        col("thread_id", Ty::I64, "The waking thread."),
        col(
            "in_poll",
            Ty::Bool,
            "Whether the woken task was being polled (it woke itself, or another thread woke it mid-poll).",
        ),
    ],
};

/// `metric_samples`: one row per metric sample.
pub const METRIC_SAMPLES: TableDef = TableDef {
    name: "metric_samples",
    doc: "One row per metric sample the dump carries (fdr's runtime metrics under their `/metrics` names, the application's registered values, the tokio watcher's).",
    always: true,
    columns: &[
        col("ts_ns", Ty::I64, "When."),
        col("thread_id", Ty::I64, "The thread that recorded it."),
        col("name", Ty::Str, "The metric's name."),
        col("value", Ty::F64, "Its value, in the unit its name says."),
    ],
};

/// `stack_samples`: one row per stack (only when the dump has any).
pub const STACK_SAMPLES: TableDef = TableDef {
    name: "stack_samples",
    doc: "One row per stack the OS view captured (written only for dumps that have any). Addresses are raw; `fdr export --format pprof` symbolizes them.",
    always: false,
    columns: &[
        col(
            "ts_ns",
            Ty::I64,
            "When the stack was taken: the stack event's time less its age (a stack is recorded after it is captured).",
        ),
        col("thread_id", Ty::I64, "The sampled thread."),
        opt(
            "task_id",
            Ty::U64,
            "The task running on the sampled thread when the stack was taken: the poll it fell in, or the user task around it (null: none, or not known).",
        ),
        opt("task_name", Ty::Str, "Its name (null when unknown)."),
        col(
            "cause",
            Ty::Str,
            "`cpu_timer`, `long_scope`, `periodic`, `scope_end` or `unknown`.",
        ),
        col(
            "truncated",
            Ty::Bool,
            "Whether the stack was cut at the capture's depth or size.",
        ),
        col(
            "frames",
            Ty::U64List,
            "Addresses, innermost first: the interrupted instruction, then return addresses.",
        ),
    ],
};

/// `findings`: one row per finding of the diagnosis.
pub const FINDINGS: TableDef = TableDef {
    name: "findings",
    doc: "One row per finding `fdr diagnose` makes of the dump, in its rank order.",
    always: true,
    columns: &[
        col("rank", Ty::I64, "1 for the top finding."),
        col("rule", Ty::Str, "The rule's id (`docs/RUNBOOK.md`)."),
        col("severity", Ty::Str, "`info`, `warning` or `critical`."),
        col("score", Ty::F64, "0 to 100."),
        col("title", Ty::Str, "One line."),
        col("evidence", Ty::Str, "Numbers and sites, one a line."),
        opt(
            "window_start_ns",
            Ty::I64,
            "The start of the time the evidence points at.",
        ),
        opt("window_end_ns", Ty::I64, "Its end."),
        col("fix", Ty::Str, "What to do."),
    ],
};

/// Every table, in the order of `docs/TABLES.md`.
pub const TABLES: [&TableDef; 11] = [
    &DUMPS,
    &TASKS,
    &POLLS,
    &AWAITS,
    &REGIONS,
    &BLOCKS,
    &LOGS,
    &WAKES,
    &METRIC_SAMPLES,
    &STACK_SAMPLES,
    &FINDINGS,
];

/// The tables' reference as Markdown: what `docs/TABLES.md` holds after its introduction.
pub fn markdown() -> String {
    let mut s = String::new();
    s.push_str("Every table starts with the identity columns:\n\n");
    table_md(&mut s, IDENTITY.iter());
    for t in TABLES {
        s.push_str(&format!("\n## `{}`\n\n{}\n\n", t.name, t.doc));
        table_md(&mut s, t.columns.iter());
    }
    s
}

fn table_md<'a>(s: &mut String, cols: impl Iterator<Item = &'a Column>) {
    s.push_str("| column | type | null | meaning |\n|---|---|---|---|\n");
    for c in cols {
        s.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            c.name,
            c.ty.sql(),
            if c.nullable { "yes" } else { "no" },
            c.doc.replace('|', "\\|")
        ));
    }
}
