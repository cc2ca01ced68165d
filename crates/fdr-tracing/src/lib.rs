//! A [`tracing_subscriber::Layer`] that records into fdr: a span's enter and exit become a
//! region's begin and end on the entering thread (named by the span's static name), and an
//! event becomes a log line (category: the event's target; message: its `message` field,
//! then its other fields as `k=v`). Nothing is formatted while fdr is not recording.
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
//!     let span = tracing::info_span!("request");
//!     let _g = span.enter();
//!     tracing::info!(rows = 3, "query done");
//! });
//! ```
#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use fdr_recorder::{EventKind, enabled, intern, record};
use tracing_core::field::{Field, Visit};
use tracing_core::span::Id;
use tracing_core::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Longest log message the layer formats; longer ones are cut (the recorder's own limit).
pub const MAX_MESSAGE_LEN: usize = fdr_recorder::MAX_FORMATTED_LOG_LEN;

/// The layer: spans to regions, events to logs.
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

impl<S> Layer<S> for FdrLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if !enabled() {
            return;
        }
        if let Some(meta) = ctx.metadata(id) {
            record(&EventKind::RegionBegin {
                name: intern(meta.name()),
            });
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if !enabled() {
            return;
        }
        if let Some(meta) = ctx.metadata(id) {
            record(&EventKind::RegionEnd {
                name: intern(meta.name()),
            });
        }
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if !enabled() {
            return;
        }
        let category = event.metadata().target();
        BUF.with(|b| {
            // A re-entrant event (a field's Debug impl that logs) formats into its own buffer.
            let mut own = Message::default();
            let mut guard = b.try_borrow_mut();
            let m = match guard.as_mut() {
                Ok(m) => &mut **m,
                Err(_) => &mut own,
            };
            m.clear();
            event.record(m);
            let fields = match m.message.is_empty() {
                true => m.fields.strip_prefix(' ').unwrap_or(&m.fields),
                false => &m.fields,
            };
            fdr_recorder::log_fmt(category, format_args!("{}{}", m.message, fields));
        });
    }
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
