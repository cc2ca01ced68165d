//! fdr's OpenTelemetry bridge: each request's fdr task carries the request's OpenTelemetry
//! trace and span ids, and its OpenTelemetry span carries the fdr task id, so an APM trace
//! leads to the execution trace and back.
//!
//! - [`ServerLayer`]: a tower layer (its service is also a hyper service) that makes each
//!   inbound request a traced async task named `http METHOD ROUTE` (axum's matched route
//!   with the `axum` feature, else the method alone unless you give a route function),
//!   linked to the request's `traceparent` or current OpenTelemetry span, and puts
//!   [`TASK_ID_KEY`] (and an "open execution trace" URL, [`TRACE_URL_KEY`]) on the current
//!   span.
//! - [`ClientLayer`]: a child task per outbound request, `traceparent` injected from the
//!   current OpenTelemetry context.
//! - [`task_in_context`], [`task_from_traceparent`], [`traced_in_context`], [`link`]: the
//!   same for code that is not a tower service.
//! - [`TraceParent`]: a strict W3C `traceparent` parser ([`TraceParentError`] says what is
//!   wrong and at which byte).
//! - [`provider_status`], [`check_provider`]: whether spans of fdr-otel's OpenTelemetry
//!   version exist in this process (see below).
//!
//! The link is an `OtelLink` event in the trace; tasks created under a linked task inherit
//! it, so `fdr tasks dump.fdr --otel-trace-id 4bf92f3577b34da6a3ce929d0e0e4736` lists the
//! request's tasks, its outbound calls included.
//!
//! # OpenTelemetry version
//!
//! fdr-otel is built with `opentelemetry` **0.33.x** ([`OPENTELEMETRY_VERSION`]; semver
//! `>=0.33, <0.34`), and re-exports it as [`fdr_otel::opentelemetry`](opentelemetry)
//! (`fdr::otel::opentelemetry` through the facade). Each 0.x release of OpenTelemetry is a
//! different crate to Cargo: an application on another release compiles, but its spans,
//! contexts and tracer provider are other types that fdr-otel cannot see, so no span would
//! get `fdr.task_id`. Depend on the same release (`opentelemetry = "0.33"`,
//! `opentelemetry_sdk = "0.33"`, and the exporters made for it) or use the re-export.
//!
//! The layers check this on their first request: if no span of fdr-otel's version is
//! current and the global tracer provider of that version is the no-op one, they print a
//! warning naming the version and the fix to stderr, once (and log it in the trace while
//! fdr records), and [`provider_status`] returns [`ProviderStatus::Missing`]. Call
//! [`check_provider`] after installing the provider to check at startup.
//!
//! ```
//! use std::borrow::Cow;
//! use std::convert::Infallible;
//!
//! use fdr_otel::{ServerLayer, UrlTemplate};
//! use http::{Request, Response};
//! use hyper::service::{Service as _, service_fn};
//! use tower::Layer as _;
//!
//! fdr_recorder::start(fdr_recorder::Config::default()).unwrap();
//! let service = ServerLayer::new()
//!     // A plain hyper service has no router to name routes: give the templates (an axum
//!     // `Router` gives them itself, with the `axum` feature).
//!     .route(|head| match head.uri.path() {
//!         p if p.starts_with("/user/") => Cow::Borrowed("/user/{id}"),
//!         p => Cow::Borrowed(p),
//!     })
//!     .trace_url(UrlTemplate::new("https://fdr.example/open?pid={pid}&task={task_id}").unwrap())
//!     .layer(service_fn(|req: Request<String>| async move {
//!         let _db = fdr_recorder::region("db");
//!         Ok::<_, Infallible>(Response::new(req.into_body()))
//!     }));
//! // Serve it with hyper (`http1::Builder::new().serve_connection(io, service)`), or call it:
//! let request = Request::get("/user/17")
//!     .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
//!     .body(String::from("hi"))
//!     .unwrap();
//! let response = std::pin::pin!(service.call(request)); // the task `http GET /user/{id}`
//! # let mut response = response;
//! # let waker = std::task::Waker::noop();
//! # let done = response.as_mut().poll(&mut std::task::Context::from_waker(waker));
//! # assert!(done.is_ready());
//! ```
//!
//! # Task names
//!
//! A task's name is a `&'static str` the recorder interns once per thread, while routes are
//! run-time strings. Names are therefore made once and kept in a bounded table of at most
//! [`MAX_TASK_NAMES`] names (routes cut to [`MAX_ROUTE_LEN`] bytes); past it, new names are
//! `http METHOD <overflow>`. Hence the server's default: a route template when a router
//! says which route matched (axum's `MatchedPath`, with the `axum` feature and the layer
//! inside the `Router`), else the method alone (`http GET`, outside the table). A route
//! function ([`ServerLayer::route`]) that returns templates keeps every name; raw paths
//! ([`ServerLayer::route_by_path`]) fill the table with the first paths seen. Either way
//! memory and the trace's string table stay bounded, whatever clients send.
//!
//! With axum (feature `axum`, axum 0.8):
//!
//! ```
//! use axum::extract::Path;
//!
//! async fn user(Path(id): Path<u64>) -> String {
//!     format!("user {id}")
//! }
//!
//! let app: axum::Router = axum::Router::new()
//!     .route("/user/{id}", axum::routing::get(user))
//!     .layer(fdr_otel::ServerLayer::new()); // tasks `http GET /user/{id}`
//! ```
//!
//! (`examples/axum.rs` serves it on loopback, sends it 2,000 ids and counts the task names
//! in the flight recorder's dump.)
//!
//! # Costs
//!
//! While fdr is not recording, the layers wrap the response future (runtime metrics still
//! count it) but make no name, parse no header and link nothing; the client layer still
//! propagates `traceparent`. While recording, a request costs a name lookup (a read lock and
//! a hash of the route), a header parse and one `OtelLink` event besides the task's own
//! events.
//!
//! # Feature flags
//!
//! - `axum`: [`ServerLayer::new`] names tasks by axum's matched route (`MatchedPath`, axum
//!   0.8) when it runs inside an axum `Router`.
//!
//! The tower and hyper service traits are always implemented (both come with few
//! dependencies). OpenTelemetry's version is pinned once, in the workspace manifest.
#![forbid(unsafe_code)]

mod client;
mod link;
mod names;
mod provider;
mod server;
mod span;
mod traceparent;

pub use client::{ClientLayer, ClientService};
pub use link::{link, task_from_traceparent, task_in_context, traced_in_context};
pub use names::{MAX_ROUTE_LEN, MAX_TASK_NAMES};
/// The OpenTelemetry API crate fdr-otel is built with (`opentelemetry`
/// [`OPENTELEMETRY_VERSION`]): use it, or depend on the same release, so that your spans and
/// tracer provider are the ones fdr-otel sees.
pub use opentelemetry;
pub use provider::{OPENTELEMETRY_VERSION, ProviderStatus, check_provider, provider_status};
pub use server::{RouteFn, ServerLayer, ServerService};
pub use span::{
    TASK_ID_KEY, TRACE_URL_KEY, UrlTemplate, UrlTemplateError, annotate, annotate_span,
};
pub use traceparent::{
    Field, TRACEPARENT, TRACEPARENT_LEN, TRACESTATE, TraceParent, TraceParentError,
};

pub(crate) use link::log_about;

/// The log category of this crate's own messages in the trace (a malformed header, say).
pub const LOG_CATEGORY: &str = "fdr-otel";
