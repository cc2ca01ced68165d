//! The service's telemetry besides fdr: an OpenTelemetry server span per request (exported
//! to memory here, where a service would export to its collector) and a `prometheus`
//! latency histogram by route, which the sentinel reads.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{FutureExt as _, SpanKind, TraceContextExt as _, Tracer as _};
use opentelemetry::{KeyValue, global};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// Spans [`SpanTally`] keeps for `GET /debug/spans`.
pub const RECENT_SPANS: usize = 32;

/// What the router's layers need.
#[derive(Clone, Debug)]
pub struct Telemetry {
    /// Where the server spans go.
    pub exporter: SpanTally,
    /// The latency histogram.
    pub http: HttpMetrics,
}

/// Request latency by method, route and status, in a registry the sentinel and the admin
/// endpoint's `/metrics` read.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    latency: prometheus::HistogramVec,
}

impl HttpMetrics {
    /// The histogram's name.
    pub const NAME: &str = "http_request_duration_seconds";

    /// Registers the histogram in `registry`.
    pub fn register(registry: &prometheus::Registry) -> prometheus::Result<HttpMetrics> {
        let latency = prometheus::HistogramVec::new(
            prometheus::HistogramOpts::new(Self::NAME, "HTTP request latency").buckets(vec![
                0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["method", "route", "status"],
        )?;
        registry.register(Box::new(latency.clone()))?;
        Ok(HttpMetrics { latency })
    }

    /// Creates the series of `method`, `route` and `status` before its first request.
    pub fn touch(&self, method: &str, route: &str, status: &str) {
        self.latency.with_label_values(&[method, route, status]);
    }
}

/// The route axum matched (a template: `/user/{id}`), or `unmatched`: label values stay few.
fn route(req: &Request) -> String {
    req.extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned()
}

/// Middleware: observes each request's latency.
pub async fn observe(State(m): State<HttpMetrics>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = route(&req);
    let response = next.run(req).await;
    m.latency
        .with_label_values(&[method.as_str(), &route, response.status().as_str()])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Reads `traceparent` (and `tracestate`) from request headers.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Middleware: a server span per request, child of the caller's `traceparent`, current
/// while the request runs, so fdr's `ServerLayer` inside it links the request's task to it
/// and puts `fdr.task_id` on it.
pub async fn server_span(req: Request, next: Next) -> Response {
    let parent = global::get_text_map_propagator(|p| p.extract(&Headers(req.headers())));
    let tracer = global::tracer("axum-service");
    let span = tracer
        .span_builder(format!("{} {}", req.method(), route(&req)))
        .with_kind(SpanKind::Server)
        .start_with_context(&tracer, &parent);
    let cx = parent.with_span(span);
    let response = next.run(req).with_context(cx.clone()).await;
    let span = cx.span();
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(response.status().as_u16()),
    ));
    span.end();
    response
}

/// A span as `GET /debug/spans` shows it.
#[derive(Debug)]
struct SpanSummary {
    trace_id: String,
    name: String,
    task_id: Option<String>,
    micros: u128,
}

#[derive(Debug, Default)]
struct Tally {
    exported: u64,
    with_task_id: u64,
    recent: VecDeque<SpanSummary>,
}

/// An in-memory span exporter: counts the spans it gets, and those carrying fdr's task id,
/// and keeps the newest [`RECENT_SPANS`].
#[derive(Clone, Debug, Default)]
pub struct SpanTally(Arc<Mutex<Tally>>);

impl SpanTally {
    /// Spans exported, and how many of them carry `fdr.task_id`.
    pub fn counts(&self) -> (u64, u64) {
        let t = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        (t.exported, t.with_task_id)
    }

    /// The newest spans, one a line: trace id, name, fdr task id, duration.
    pub fn recent_text(&self) -> String {
        let t = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut s = format!(
            "{} spans exported, {} with {}\n",
            t.exported,
            t.with_task_id,
            fdr::otel::TASK_ID_KEY
        );
        for span in t.recent.iter().rev() {
            let _ = writeln!(
                s,
                "trace_id={} name={:?} {}={} duration_us={}",
                span.trace_id,
                span.name,
                fdr::otel::TASK_ID_KEY,
                span.task_id.as_deref().unwrap_or("-"),
                span.micros
            );
        }
        s
    }
}

impl SpanExporter for SpanTally {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let mut t = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for span in batch {
            let task_id = span
                .attributes
                .iter()
                .find(|kv| kv.key.as_str() == fdr::otel::TASK_ID_KEY)
                .map(|kv| kv.value.to_string());
            t.exported += 1;
            t.with_task_id += u64::from(task_id.is_some());
            if t.recent.len() == RECENT_SPANS {
                t.recent.pop_front();
            }
            t.recent.push_back(SpanSummary {
                trace_id: span.span_context.trace_id().to_string(),
                name: span.name.into_owned(),
                task_id,
                micros: span
                    .end_time
                    .duration_since(span.start_time)
                    .unwrap_or_default()
                    .as_micros(),
            });
        }
        std::future::ready(Ok(()))
    }
}
