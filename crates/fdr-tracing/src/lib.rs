//! A [`tracing_subscriber::Layer`] that records into fdr.
//!
//! - A span's fields become a log line when the span is created, under the span's name
//!   (category) with the fields as `k=v` (message), and so do values `record`ed later; the
//!   category is the span's static name, never a field's value, so it stays bounded.
//! - A span's first entry is a region on the entering thread (begin at the enter, end at
//!   the exit, named by the span's static name), as for any synchronous span.
//! - A span's life from its first enter to its close is an async region
//!   ([`AsyncRegionBegin`](fdr_recorder::EventKind::AsyncRegionBegin) with a fresh region id
//!   and the task current at the first enter, [`AsyncRegionEnd`](fdr_recorder::EventKind::AsyncRegionEnd)
//!   at the close, on whichever thread closes it). An async span (`#[instrument]` on an
//!   `async fn`, or `.instrument(span)`) is entered on every poll and exited at every
//!   `.await` that waits; it is one async region across all of them, never a region per
//!   poll: later entries record nothing.
//! - An event becomes a log line (category: the event's target; message: its `message` field,
//!   then its other fields as `k=v`).
//!
//! Nothing is formatted while fdr is not recording. Field text is cut at
//! [`MAX_MESSAGE_LEN`] bytes.
//!
//! Per-layer filters work as with any layer: `FdrLayer::new().with_filter(...)` records only
//! what the filter lets through.
//!
//! ```
//! use tracing_subscriber::prelude::*;
//!
//! fdr_recorder::start(fdr_recorder::Config::default()).unwrap();
//! let subscriber = tracing_subscriber::registry().with(fdr_tracing::FdrLayer::new());
//! tracing::subscriber::with_default(subscriber, || {
//!     let span = tracing::info_span!("request", user = 7);
//!     let _g = span.enter();
//!     tracing::info!(rows = 3, "query done");
//! });
//! ```
#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use fdr_recorder::{
    EventKind, StrId, TaskId, current_task, enabled, intern, new_region_id, record,
};
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Longest log message the layer formats; longer ones are cut (the recorder's own limit).
pub const MAX_MESSAGE_LEN: usize = fdr_recorder::MAX_FORMATTED_LOG_LEN;

/// The layer: span fields to logs, a span's first entry to a region and its life to an
/// async region, events to logs.
#[derive(Debug, Clone, Copy, Default)]
pub struct FdrLayer {
    _private: (),
}

impl FdrLayer {
    /// A layer recording into the process's fdr recorder.
    pub fn new() -> Self {
        FdrLayer { _private: () }
    }
}

thread_local! {
    /// Its address identifies the thread (cheaper than `thread::current().id()`).
    static THREAD_MARK: u8 = const { 0 };
}

/// This thread's identity while it lives.
fn thread_mark() -> usize {
    THREAD_MARK.with(|m| m as *const u8 as usize)
}

/// What the layer keeps of a span it recorded, in the span's extensions from its first
/// enter on.
#[derive(Debug)]
struct Recorded {
    name: StrId,
    /// The span's async region.
    region: u64,
    /// The task current at the first enter: the async region's task.
    task: TaskId,
    /// The thread of the first entry, whose region is the one recorded.
    thread: usize,
    /// Enters of the first entry's thread still open (re-entrant enters count).
    depth: AtomicU32,
    /// The first entry's region has ended.
    first_done: AtomicBool,
}

impl<S> Layer<S> for FdrLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        if !enabled() || attrs.values().is_empty() {
            return;
        }
        let name = attrs.metadata().name();
        with_message(|m| {
            attrs.record(m);
            log_fields(name, m);
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if !enabled() || values.is_empty() {
            return;
        }
        if let Some(meta) = ctx.metadata(id) {
            with_message(|m| {
                values.record(m);
                log_fields(meta.name(), m);
            });
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if !enabled() {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        // Held from the check to the insert, so two threads entering a span for the first
        // time at once record one first entry.
        let mut ext = span.extensions_mut();
        if let Some(r) = ext.get_mut::<Recorded>() {
            // A later entry (the next poll of an async span): inside its async region
            // already. Only a re-entrant enter of the first entry is counted.
            if !r.first_done.load(Ordering::Relaxed) && r.thread == thread_mark() {
                r.depth.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        let name = intern(span.metadata().name());
        let (region, task) = (new_region_id(), current_task());
        record(&EventKind::AsyncRegionBegin { region, task, name });
        record(&EventKind::RegionBegin { name });
        ext.insert(Recorded {
            name,
            region,
            task,
            thread: thread_mark(),
            depth: AtomicU32::new(1),
            first_done: AtomicBool::new(false),
        });
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let ext = span.extensions();
        let Some(r) = ext.get::<Recorded>() else {
            return;
        };
        if r.first_done.load(Ordering::Relaxed) || r.thread != thread_mark() {
            return;
        }
        if r.depth.fetch_sub(1, Ordering::Relaxed) == 1 {
            r.first_done.store(true, Ordering::Relaxed);
            record(&EventKind::RegionEnd { name: r.name });
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let ext = span.extensions();
        if let Some(r) = ext.get::<Recorded>() {
            record(&EventKind::AsyncRegionEnd {
                region: r.region,
                task: r.task,
            });
        }
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if !enabled() {
            return;
        }
        let category = event.metadata().target();
        with_message(|m| {
            event.record(m);
            let fields = match m.message.is_empty() {
                true => m.fields.strip_prefix(' ').unwrap_or(&m.fields),
                false => &m.fields,
            };
            fdr_recorder::log_fmt(category, format_args!("{}{}", m.message, fields));
        });
    }
}

/// Runs `f` with a cleared message buffer: the thread's own, or a fresh one for a
/// re-entrant call (a field's `Debug` impl that logs or creates a span).
fn with_message(f: impl FnOnce(&mut Message)) {
    BUF.with(|b| {
        let mut own = Message::default();
        let mut guard = b.try_borrow_mut();
        let m = match guard.as_mut() {
            Ok(m) => &mut **m,
            Err(_) => &mut own,
        };
        m.clear();
        f(m);
    });
}

/// Logs a span's fields under its name: `k=v k=v` (a `message` field first, as for events).
fn log_fields(span_name: &'static str, m: &Message) {
    let fields = match m.message.is_empty() {
        true => m.fields.strip_prefix(' ').unwrap_or(&m.fields),
        false => &m.fields,
    };
    if m.message.is_empty() && fields.is_empty() {
        return;
    }
    fdr_recorder::log_fmt(span_name, format_args!("{}{}", m.message, fields));
}

/// A message being formatted: the `message` field, then the others as ` k=v`.
#[derive(Default)]
struct Message {
    message: String,
    fields: String,
}

impl Message {
    fn clear(&mut self) {
        self.message.clear();
        self.fields.clear();
    }

    fn room(&self) -> bool {
        self.message.len() + self.fields.len() < MAX_MESSAGE_LEN
    }

    fn field(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if !self.room() {
            return;
        }
        if field.name() == "message" {
            let _ = self.message.write_fmt(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }
}

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.field(field, format_args!("{value}"));
        } else {
            self.field(field, format_args!("{value:?}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, format_args!("{value:?}"));
    }
}

thread_local! {
    static BUF: RefCell<Message> = RefCell::new(Message {
        message: String::with_capacity(256),
        fields: String::with_capacity(256),
    });
}
