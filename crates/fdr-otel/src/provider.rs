//! Whether this process makes OpenTelemetry spans of the version fdr-otel is built with.
//!
//! OpenTelemetry's 0.x releases are distinct crates to Cargo: an application on another
//! `opentelemetry` version than fdr-otel's compiles, but its spans, contexts and global
//! tracer provider are invisible here (the current context of fdr-otel's version is empty,
//! its global provider the no-op one), so no span would get `fdr.task_id`. The layers
//! therefore look, on the first request they see, for a span of fdr-otel's version: a valid
//! span in the current context, or one the global tracer provider makes. If there is none,
//! they say so once on stderr (and in the trace, while recording) and
//! [`provider_status`] returns [`ProviderStatus::Missing`].

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    Tracer as _,
};
use opentelemetry::{Context, global};

/// The `opentelemetry` release fdr-otel is built with and supports: `0.33.x` (semver
/// `>=0.33, <0.34`). Spans, contexts and tracer providers of any other release are other
/// types, invisible to fdr-otel; depend on this one, or use the re-export
/// [`fdr_otel::opentelemetry`](crate::opentelemetry).
pub const OPENTELEMETRY_VERSION: &str = "0.33";

/// What fdr-otel found when it looked for OpenTelemetry spans of its version
/// ([`OPENTELEMETRY_VERSION`]); see [`provider_status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderStatus {
    /// Not looked yet: no request went through a layer, and [`check_provider`] was not
    /// called.
    Unchecked,
    /// A span of fdr-otel's version was current, or the global tracer provider of that
    /// version makes real spans: spans get `fdr.task_id`.
    Found,
    /// Neither: the global tracer provider of fdr-otel's version is the no-op one and no
    /// span of that version was current. Requests are still linked through their
    /// `traceparent` headers, but no span gets `fdr.task_id`. Its `Display` is the warning
    /// fdr-otel prints.
    Missing,
}

impl fmt::Display for ProviderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = OPENTELEMETRY_VERSION;
        match self {
            ProviderStatus::Unchecked => f.write_str("fdr-otel: OpenTelemetry not checked yet"),
            ProviderStatus::Found => write!(
                f,
                "fdr-otel: spans of opentelemetry {v} are being made; they get fdr.task_id"
            ),
            ProviderStatus::Missing => write!(
                f,
                "fdr-otel: WARNING: no OpenTelemetry tracer provider of opentelemetry {v} is \
                 installed (fdr-otel is built with opentelemetry {v}.x): the global provider \
                 of that version is the no-op one and no span of that version is current, so \
                 no span gets fdr.task_id; requests are linked to traces only through their \
                 traceparent headers. Fix: depend on opentelemetry {v} and opentelemetry_sdk \
                 {v} (or use fdr::otel::opentelemetry) and install the provider with \
                 opentelemetry::global::set_tracer_provider; a provider of another \
                 opentelemetry version is invisible to fdr-otel."
            ),
        }
    }
}

const UNCHECKED: u8 = 0;
const FOUND: u8 = 1;
const MISSING: u8 = 2;

static STATUS: AtomicU8 = AtomicU8::new(UNCHECKED);
static WARNED: AtomicBool = AtomicBool::new(false);

/// The probe's remote parent: unsampled, so a parent-based sampler (the SDK's default)
/// drops the probe span and nothing is exported. The ids spell "fdr-otel probe".
const PROBE_TRACE_ID: u128 = 0x6664_722d_6f74_656c_2070_726f_6265_0001;
const PROBE_SPAN_ID: u64 = 0x6664_722d_7072_6f62;

/// What fdr-otel last found (see [`ProviderStatus`]). The layers look on their first
/// request; while the status is [`Missing`](ProviderStatus::Missing), each later request
/// looks at its current context again, and a span of fdr-otel's version there turns it into
/// [`Found`](ProviderStatus::Found).
pub fn provider_status() -> ProviderStatus {
    match STATUS.load(Ordering::Relaxed) {
        UNCHECKED => ProviderStatus::Unchecked,
        FOUND => ProviderStatus::Found,
        _ => ProviderStatus::Missing,
    }
}

/// Looks now for spans of fdr-otel's OpenTelemetry version: a valid span in the current
/// context, else a span the global tracer provider makes (one probe span under an unsampled
/// remote parent, named `fdr-otel provider check`: a parent-based sampler, the SDK's
/// default, drops it; a sampler that ignores the parent exports it). Records the result for
/// [`provider_status`] and, the first time nothing is found, prints
/// [`ProviderStatus::Missing`]'s warning to stderr and logs it in the trace (category
/// [`LOG_CATEGORY`](crate::LOG_CATEGORY)) while fdr records.
///
/// The layers call this on their first request; call it yourself after installing the
/// tracer provider to fail fast at startup:
///
/// ```
/// // No provider of fdr-otel's version is installed here.
/// assert_eq!(fdr_otel::check_provider(), fdr_otel::ProviderStatus::Missing);
/// ```
pub fn check_provider() -> ProviderStatus {
    let found = current_span_is_valid() || global_provider_makes_spans();
    if found {
        STATUS.store(FOUND, Ordering::Relaxed);
        return ProviderStatus::Found;
    }
    STATUS.store(MISSING, Ordering::Relaxed);
    let status = ProviderStatus::Missing;
    if !WARNED.swap(true, Ordering::Relaxed) {
        eprintln!("{status}");
        if fdr_recorder::enabled() {
            fdr_recorder::log_fmt(crate::LOG_CATEGORY, format_args!("{status}"));
        }
    }
    status
}

/// Called by the layers on each request: one relaxed load once spans were found.
#[inline]
pub(crate) fn on_request() {
    match STATUS.load(Ordering::Relaxed) {
        FOUND => {}
        UNCHECKED => {
            check_provider();
        }
        _ => {
            if current_span_is_valid() {
                STATUS.store(FOUND, Ordering::Relaxed);
            }
        }
    }
}

fn current_span_is_valid() -> bool {
    Context::map_current(|cx| cx.span().span_context().is_valid())
}

/// Whether the global tracer provider of fdr-otel's version makes real spans. The no-op
/// provider's span carries its parent's span context; any real provider's has its own span
/// id (an SDK whose provider was shut down returns an invalid one: no spans either).
fn global_provider_makes_spans() -> bool {
    let parent = SpanContext::new(
        TraceId::from(PROBE_TRACE_ID),
        SpanId::from(PROBE_SPAN_ID),
        TraceFlags::default(),
        true,
        TraceState::default(),
    );
    let cx = Context::new().with_remote_span_context(parent);
    let mut span = global::tracer("fdr-otel").start_with_context("fdr-otel provider check", &cx);
    let sc = span.span_context();
    let real = sc.is_valid() && sc.span_id() != SpanId::from(PROBE_SPAN_ID);
    span.end();
    real
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The constant users read is the version the workspace pins and the lock file holds.
    #[test]
    fn the_stated_version_is_the_pinned_one() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let manifest = std::fs::read_to_string(format!("{root}/Cargo.toml")).unwrap();
        let pin = manifest
            .lines()
            .find(|l| l.starts_with("opentelemetry = "))
            .expect("the root manifest pins opentelemetry");
        assert!(
            pin.contains(&format!("version = \"{OPENTELEMETRY_VERSION}\"")),
            "OPENTELEMETRY_VERSION {OPENTELEMETRY_VERSION} against {pin}"
        );
        let lock = std::fs::read_to_string(format!("{root}/Cargo.lock")).unwrap();
        let sdk_pin = manifest
            .lines()
            .find(|l| l.starts_with("opentelemetry_sdk = "))
            .expect("the root manifest pins opentelemetry_sdk");
        assert!(sdk_pin.contains(&format!("version = \"{OPENTELEMETRY_VERSION}\"")));
        let locked = format!("name = \"opentelemetry\"\nversion = \"{OPENTELEMETRY_VERSION}.");
        assert!(lock.contains(&locked), "Cargo.lock has no {locked:?}");
    }

    #[test]
    fn the_warning_names_the_version_and_the_fix() {
        let w = ProviderStatus::Missing.to_string();
        assert!(
            w.contains(&format!("opentelemetry {OPENTELEMETRY_VERSION}")),
            "{w}"
        );
        assert!(w.contains("global::set_tracer_provider"), "{w}");
        assert!(w.contains("fdr::otel::opentelemetry"), "{w}");
    }
}
