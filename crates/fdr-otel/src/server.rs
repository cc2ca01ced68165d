//! Inbound requests: a traced fdr task per request, named `http METHOD ROUTE`, linked to the
//! request's OpenTelemetry context.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use fdr_recorder::enabled;
use fdr_recorder::task::Traced;
use http::request::Parts;
use http::{HeaderMap, Request};
use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt as _;

use crate::names::{Side, task_name};
use crate::provider;
use crate::{TRACEPARENT, TraceParent, TraceParentError, UrlTemplate, annotate, link, log_about};

/// A function from a request's head to its route (see [`ServerLayer::route`]).
pub type RouteFn = dyn for<'a> Fn(&'a Parts) -> Cow<'a, str> + Send + Sync;

/// The task name used while fdr is not recording (the name is then never written).
const UNRECORDED: &str = "http";

/// How a [`ServerLayer`] names a request's route.
#[derive(Clone)]
enum Route {
    /// axum's matched route when there is one (feature `axum`), else none: `http METHOD`.
    Template,
    /// The request's path.
    Path,
    /// The user's function.
    Fn(Arc<RouteFn>),
}

impl Route {
    fn of<'a>(&self, parts: &'a Parts) -> Cow<'a, str> {
        match self {
            Route::Template => Cow::Borrowed(matched_route(parts).unwrap_or("")),
            Route::Path => Cow::Borrowed(parts.uri.path()),
            Route::Fn(f) => f(parts),
        }
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Route::Template => "Template",
            Route::Path => "Path",
            Route::Fn(_) => "Fn",
        })
    }
}

/// The route template axum matched for the request (`/user/{id}`), if the request went
/// through an axum `Router` that recorded it (axum's `MatchedPath` extension: the layer
/// runs inside the router, added with `Router::layer` or `route_layer`).
#[cfg(feature = "axum")]
fn matched_route(parts: &Parts) -> Option<&str> {
    parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str())
}

/// Without the `axum` feature there is no route template to read.
#[cfg(not(feature = "axum"))]
fn matched_route(_parts: &Parts) -> Option<&str> {
    None
}

/// A tower [`Layer`](tower::Layer) that makes each inbound request an fdr task; see
/// [`ServerService`] for what it records.
#[derive(Clone)]
pub struct ServerLayer {
    route: Route,
    trace_url: Option<Arc<UrlTemplate>>,
    site: &'static Location<'static>,
}

impl fmt::Debug for ServerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerLayer")
            .field("route", &self.route)
            .field("trace_url", &self.trace_url)
            .field("site", &self.site)
            .finish()
    }
}

impl Default for ServerLayer {
    #[track_caller]
    fn default() -> Self {
        Self::new()
    }
}

impl ServerLayer {
    /// A layer naming tasks by route template, setting no URL attribute. The caller's
    /// location is the tasks' spawn site.
    ///
    /// With the `axum` feature, inside an axum `Router` (`Router::layer`), a task is named
    /// by the route axum matched: `http GET /user/{id}`. Otherwise it is named by the
    /// method alone, `http GET`: a raw path (`/user/17`) is no name for a task, since every
    /// id would make a new one. Give a route function ([`route`](Self::route)) to name
    /// tasks by route in other routers, or ask for paths ([`route_by_path`](Self::route_by_path)).
    #[track_caller]
    pub fn new() -> Self {
        ServerLayer {
            route: Route::Template,
            trace_url: None,
            site: Location::caller(),
        }
    }

    /// Names tasks `http METHOD <route(head)>` instead. Return the route's template
    /// (`/user/{id}`), not the path (`/user/17`): task names come from a bounded table
    /// ([`MAX_TASK_NAMES`](crate::MAX_TASK_NAMES)) and, once it is full, new names
    /// become `http METHOD <overflow>`, so raw paths with ids soon lose their names. An empty
    /// route names the method alone (`http METHOD`). The head's extensions hold what the
    /// router put there (axum's `MatchedPath`, say).
    pub fn route<F>(mut self, route: F) -> Self
    where
        F: for<'a> Fn(&'a Parts) -> Cow<'a, str> + Send + Sync + 'static,
    {
        self.route = Route::Fn(Arc::new(route));
        self
    }

    /// Names tasks `http METHOD PATH` by the request's raw path: for services with a few
    /// fixed paths and no ids in them. Names still come from the bounded table: past
    /// [`MAX_TASK_NAMES`](crate::MAX_TASK_NAMES) distinct paths, new ones are named
    /// `http METHOD <overflow>`.
    pub fn route_by_path(mut self) -> Self {
        self.route = Route::Path;
        self
    }

    /// Puts an "open execution trace" URL ([`TRACE_URL_KEY`](crate::TRACE_URL_KEY)) made
    /// from `template` on the current OpenTelemetry span, next to `fdr.task_id`.
    pub fn trace_url(mut self, template: UrlTemplate) -> Self {
        self.trace_url = Some(Arc::new(template));
        self
    }

    /// Wraps the inner service's future for `req` in the request's task (the part both
    /// service traits share).
    fn traced<B, F: Future>(
        &self,
        req: Request<B>,
        call: impl FnOnce(Request<B>) -> F,
    ) -> Traced<F> {
        provider::on_request();
        if !enabled() {
            return Traced::new(call(req), UNRECORDED, self.site);
        }
        let (ids, bad) = Context::map_current(|cx| inbound_ids(req.headers(), cx));
        let (parts, body) = req.into_parts();
        let name = task_name(Side::Server, &parts.method, &self.route.of(&parts));
        let traced = Traced::new(call(Request::from_parts(parts, body)), name, self.site);
        let task = traced.id();
        if let Some(ids) = &ids {
            link(task, ids);
        }
        if let Some(e) = bad {
            let kept = if ids.is_some() {
                "the task is linked to the current OpenTelemetry span instead"
            } else {
                "the task has no OpenTelemetry link"
            };
            log_about(task, format_args!("{e}; {kept}"));
        }
        Context::map_current(|cx| annotate(cx, task, self.trace_url.as_deref()));
        traced
    }
}

impl<S> tower::Layer<S> for ServerLayer {
    type Service = ServerService<S>;

    fn layer(&self, inner: S) -> ServerService<S> {
        ServerService {
            inner,
            layer: self.clone(),
        }
    }
}

/// A service (tower's [`Service`](tower::Service) or hyper's
/// [`Service`](hyper::service::Service), whichever the inner one is) that makes each request
/// an fdr task:
///
/// - an async task named `http METHOD ROUTE` ([`ServerLayer::new`] says which route), created when the
///   request arrives as a child of the current fdr task, with the layer's construction site
///   as its spawn site;
/// - the response future is that task ([`Traced`]): its polls, wakes and drop are recorded,
///   and work done while it is polled (regions, logs, locks, tasks it spawns) belongs to it;
/// - linked (`OtelLink`) to the request's OpenTelemetry ids: the current OpenTelemetry span
///   if it is a local span of the header's trace (an OTel middleware outside this one made a
///   server span for the request), else the `traceparent` header's trace and caller span,
///   else the current context's span, if any;
/// - `fdr.task_id` (and the URL, if configured) put on the current OpenTelemetry span if it
///   is recording.
///
/// A malformed `traceparent` does not fail the request: a log in the trace (category
/// `fdr-otel`) says `task N: <the parse error>; <what the task was linked to instead>`.
/// While fdr is not recording, the request is still
/// wrapped (runtime metrics count it), but no name is made and nothing is linked.
///
/// The inner service's `call` runs before the task is created; the future it returns runs
/// inside it.
#[derive(Clone, Debug)]
pub struct ServerService<S> {
    inner: S,
    layer: ServerLayer,
}

impl<S> ServerService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, B> tower::Service<Request<B>> for ServerService<S>
where
    S: tower::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Traced<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let inner = &mut self.inner;
        self.layer.traced(req, |req| inner.call(req))
    }
}

impl<S, B> hyper::service::Service<Request<B>> for ServerService<S>
where
    S: hyper::service::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Traced<S::Future>;

    fn call(&self, req: Request<B>) -> Self::Future {
        self.layer.traced(req, |req| self.inner.call(req))
    }
}

/// The ids an inbound request's task links to, and a bad header's error.
fn inbound_ids(
    headers: &HeaderMap,
    cx: &Context,
) -> (Option<TraceParent>, Option<TraceParentError>) {
    let current = if cx.has_active_span() {
        let span = cx.span();
        let sc = span.span_context();
        TraceParent::from_span_context(sc).map(|ids| (ids, sc.is_remote()))
    } else {
        None
    };
    match header_ids(headers) {
        Some(Ok(h)) => match current {
            Some((c, false)) if c.trace_id == h.trace_id => (Some(c), None),
            _ => (Some(h), None),
        },
        Some(Err(e)) => (current.map(|c| c.0), Some(e)),
        None => (current.map(|c| c.0), None),
    }
}

/// The request's `traceparent`, parsed: `None` if absent; two or more are an error.
pub(crate) fn header_ids(headers: &HeaderMap) -> Option<Result<TraceParent, TraceParentError>> {
    let all = headers.get_all(TRACEPARENT);
    let mut values = all.iter();
    let first = values.next()?;
    Some(match values.next() {
        None => TraceParent::parse_bytes(first.as_bytes()),
        Some(_) => Err(TraceParentError::Repeated {
            count: all.iter().count(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    const HEADER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(TRACEPARENT, v.parse().unwrap());
        }
        h
    }

    fn cx(trace: u128, span: u64, remote: bool) -> Context {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            TraceFlags::SAMPLED,
            remote,
            TraceState::default(),
        ))
    }

    #[test]
    fn the_header_wins_over_a_remote_or_foreign_context() {
        let h = TraceParent::parse(HEADER).unwrap();
        assert_eq!(
            inbound_ids(&headers(&[HEADER]), &Context::new()),
            (Some(h), None)
        );
        assert_eq!(
            inbound_ids(&headers(&[HEADER]), &cx(5, 6, true)),
            (Some(h), None)
        );
        assert_eq!(
            inbound_ids(&headers(&[HEADER]), &cx(5, 6, false)),
            (Some(h), None)
        );
    }

    #[test]
    fn a_local_span_of_the_same_trace_is_more_precise_than_the_header() {
        let h = TraceParent::parse(HEADER).unwrap();
        let trace = u128::from_be_bytes(h.trace_id);
        let (ids, err) = inbound_ids(&headers(&[HEADER]), &cx(trace, 0x77, false));
        assert_eq!(err, None);
        let ids = ids.unwrap();
        assert_eq!(ids.trace_id, h.trace_id);
        assert_eq!(ids.span_id, 0x77u64.to_be_bytes());
    }

    #[test]
    fn without_a_good_header_the_current_context_is_used() {
        let c = cx(5, 6, true);
        let want = TraceParent::from_context(&c);
        assert_eq!(inbound_ids(&HeaderMap::new(), &c), (want, None));
        assert_eq!(
            inbound_ids(&HeaderMap::new(), &Context::new()),
            (None, None)
        );
        let (ids, err) = inbound_ids(&headers(&["00-zz"]), &c);
        assert_eq!(ids, want);
        assert_eq!(err, Some(TraceParentError::Length { len: 5 }));
        let (ids, err) = inbound_ids(&headers(&[HEADER, HEADER]), &Context::new());
        assert_eq!(ids, None);
        assert_eq!(err, Some(TraceParentError::Repeated { count: 2 }));
    }
}
