//! fdr tasks tied to OpenTelemetry ids: the `OtelLink` event, and tasks started from an
//! OpenTelemetry `Context` or a `traceparent` value.

use std::future::Future;
use std::panic::Location;

use fdr_format::{EventKind, TaskId};
use fdr_recorder::task::Traced;
use fdr_recorder::{TaskGuard, enabled, record};
use opentelemetry::Context;

use crate::{TraceParent, TraceParentError};

/// Records that `task` serves the OpenTelemetry trace and span of `ids` (an `OtelLink`
/// event), so `fdr tasks dump.fdr --otel-trace-id <trace id>` finds the task and every task
/// created under it. Costs one relaxed load when fdr is not recording.
#[inline]
pub fn link(task: TaskId, ids: &TraceParent) {
    if enabled() && task != TaskId::NONE {
        record(&EventKind::OtelLink {
            task,
            trace_id: ids.trace_id,
            span_id: ids.span_id,
        });
    }
}

/// Begins a user task named `name` (a child of the current fdr task, and current until the
/// guard drops) and links it to the active span of `cx`, if `cx` has a valid one.
///
/// ```
/// use opentelemetry::Context;
///
/// fn handle(cx: &Context) {
///     let _task = fdr_otel::task_in_context("job", cx);
///     // ... regions, logs, locks here belong to the task ...
/// }
/// handle(&Context::current());
/// ```
pub fn task_in_context(name: &'static str, cx: &Context) -> TaskGuard {
    let guard = fdr_recorder::task(name);
    if let Some(ids) = TraceParent::from_context(cx) {
        link(guard.id(), &ids);
    }
    guard
}

/// Begins a user task named `name` linked to the caller's span in a `traceparent` header
/// value. A malformed value is refused before any task begins (see [`TraceParent::parse`]).
pub fn task_from_traceparent(
    name: &'static str,
    traceparent: &str,
) -> Result<TaskGuard, TraceParentError> {
    let ids = TraceParent::parse(traceparent)?;
    let guard = fdr_recorder::task(name);
    link(guard.id(), &ids);
    Ok(guard)
}

/// Makes `future` an instrumented async task named `name` (as
/// [`FdrFutureExt::traced`](fdr_recorder::task::FdrFutureExt::traced) does: polls, wakes and drop
/// recorded, created here as a child of the current task) linked to the active span of
/// `cx`, if `cx` has a valid one.
#[track_caller]
pub fn traced_in_context<F: Future>(future: F, name: &'static str, cx: &Context) -> Traced<F> {
    let traced = Traced::new(future, name, Location::caller());
    if let Some(ids) = TraceParent::from_context(cx) {
        link(traced.id(), &ids);
    }
    traced
}

/// Logs `message` about `task` under [`LOG_CATEGORY`](crate::LOG_CATEGORY), prefixed
/// `task N: ` (a log belongs to the task being polled when it is recorded, and these are
/// recorded before the task's first poll).
pub(crate) fn log_about(task: TaskId, args: std::fmt::Arguments<'_>) {
    if enabled() {
        fdr_recorder::log_fmt(crate::LOG_CATEGORY, format_args!("task {}: {args}", task.0));
    }
}
