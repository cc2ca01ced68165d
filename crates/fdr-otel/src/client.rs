//! Outbound requests: a child fdr task per request, with the current OpenTelemetry context
//! propagated in a `traceparent` header.

use std::borrow::Cow;
use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use fdr_recorder::enabled;
use fdr_recorder::task::Traced;
use http::header::{HeaderName, HeaderValue};
use http::request::Parts;
use http::{HeaderMap, Request};
use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt as _;

use crate::names::{Side, task_name};
use crate::server::{RouteFn, header_ids};
use crate::{TRACEPARENT, TRACESTATE, TraceParent, TraceParentError, link, log_about};

/// The task name used while fdr is not recording (the name is then never written).
const UNRECORDED: &str = "http client";

/// A tower [`Layer`](tower::Layer) for outgoing requests; see [`ClientService`].
#[derive(Clone)]
pub struct ClientLayer {
    route: Arc<RouteFn>,
    site: &'static Location<'static>,
}

impl fmt::Debug for ClientLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientLayer")
            .field("site", &self.site)
            .finish_non_exhaustive()
    }
}

impl Default for ClientLayer {
    #[track_caller]
    fn default() -> Self {
        Self::new()
    }
}

impl ClientLayer {
    /// A layer naming tasks `http client METHOD AUTHORITY` (the URI's `host:port`, else the
    /// `Host` header, else `-`). The caller's location is the tasks' spawn site.
    #[track_caller]
    pub fn new() -> Self {
        ClientLayer {
            route: Arc::new(|parts: &Parts| match parts.uri.authority() {
                Some(a) => Cow::Borrowed(a.as_str()),
                None => Cow::Borrowed(
                    parts
                        .headers
                        .get(http::header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or("-"),
                ),
            }),
            site: Location::caller(),
        }
    }

    /// Names tasks `http client METHOD <route(head)>` instead. As for the server, return a
    /// bounded set of names (a downstream's name, an endpoint's template), not raw paths.
    pub fn route<F>(mut self, route: F) -> Self
    where
        F: for<'a> Fn(&'a Parts) -> Cow<'a, str> + Send + Sync + 'static,
    {
        self.route = Arc::new(route);
        self
    }
}

impl<S> tower::Layer<S> for ClientLayer {
    type Service = ClientService<S>;

    fn layer(&self, inner: S) -> ClientService<S> {
        ClientService {
            inner,
            layer: self.clone(),
        }
    }
}

/// A tower [`Service`](tower::Service) for outgoing requests:
///
/// - the `traceparent` header: a request that already carries one valid `traceparent` keeps
///   it; otherwise, if the current OpenTelemetry context has a valid span, its ids are
///   written there (replacing any malformed value, with the span's `tracestate`, if any), so
///   the downstream's spans and fdr tasks join the caller's trace. No span is created: the
///   downstream's parent is the caller's current span. This happens whether or not fdr
///   records;
/// - the response future is an async fdr task ([`Traced`]) named `http client METHOD ROUTE`,
///   a child of the current fdr task (the request being served), created at the layer's
///   construction site, and linked (`OtelLink`) to the ids the header carries.
#[derive(Clone, Debug)]
pub struct ClientService<S> {
    inner: S,
    layer: ClientLayer,
}

impl<S> ClientService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, B> tower::Service<Request<B>> for ClientService<S>
where
    S: tower::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Traced<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        crate::provider::on_request();
        let (ids, bad) = propagate(req.headers_mut());
        if !enabled() {
            return Traced::new(self.inner.call(req), UNRECORDED, self.layer.site);
        }
        let (parts, body) = req.into_parts();
        let name = task_name(Side::Client, &parts.method, &(self.layer.route)(&parts));
        let fut = self.inner.call(Request::from_parts(parts, body));
        let traced = Traced::new(fut, name, self.layer.site);
        if let Some(ids) = &ids {
            link(traced.id(), ids);
        }
        if let Some(e) = bad {
            let done = if ids.is_some() {
                "replaced it with the current OpenTelemetry span's"
            } else {
                "sent it as it was (no OpenTelemetry span is current)"
            };
            log_about(traced.id(), format_args!("outgoing {e}; {done}"));
        }
        traced
    }
}

/// Makes sure `headers` carry the trace: keeps one valid `traceparent`, else writes the
/// current span's. Returns the ids sent and a bad existing header's error.
fn propagate(headers: &mut HeaderMap) -> (Option<TraceParent>, Option<TraceParentError>) {
    let bad = match header_ids(headers) {
        Some(Ok(ids)) => return (Some(ids), None),
        Some(Err(e)) => Some(e),
        None => None,
    };
    let ids = Context::map_current(|cx| {
        if !cx.has_active_span() {
            return None;
        }
        let span = cx.span();
        let sc = span.span_context();
        let ids = TraceParent::from_span_context(sc)?;
        let value = HeaderValue::try_from(ids.to_string()).ok()?;
        headers.insert(HeaderName::from_static(TRACEPARENT), value);
        headers.remove(TRACESTATE);
        let state = sc.trace_state().header();
        if !state.is_empty()
            && let Ok(v) = HeaderValue::try_from(state)
        {
            headers.insert(HeaderName::from_static(TRACESTATE), v);
        }
        Some(ids)
    });
    (ids, bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    fn with_span(state: TraceState) -> Context {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from(0x0af7651916cd43dd8448eb211c80319c),
            SpanId::from(0xb7ad6b7169203331),
            TraceFlags::SAMPLED,
            false,
            state,
        ))
    }

    const SENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn injects_the_current_span_and_its_state() {
        let state = TraceState::from_key_value([("vendor", "v1")]).unwrap();
        let _g = with_span(state).attach();
        let mut h = HeaderMap::new();
        let (ids, bad) = propagate(&mut h);
        assert_eq!(bad, None);
        assert_eq!(ids.unwrap().to_string(), SENT);
        assert_eq!(h[TRACEPARENT], SENT);
        assert_eq!(h[TRACESTATE], "vendor=v1");
    }

    #[test]
    fn keeps_a_valid_header_and_replaces_a_bad_one() {
        let _g = with_span(TraceState::default()).attach();
        let theirs = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let mut h = HeaderMap::new();
        h.insert(TRACEPARENT, HeaderValue::from_static(theirs));
        h.insert(TRACESTATE, HeaderValue::from_static("a=b"));
        assert_eq!(propagate(&mut h).0.unwrap().to_string(), theirs);
        assert_eq!(h[TRACEPARENT], theirs);
        assert_eq!(h[TRACESTATE], "a=b");

        let mut h = HeaderMap::new();
        h.insert(TRACEPARENT, HeaderValue::from_static("00-garbage"));
        h.insert(TRACESTATE, HeaderValue::from_static("a=b"));
        let (ids, bad) = propagate(&mut h);
        assert_eq!(ids.unwrap().to_string(), SENT);
        assert_eq!(bad, Some(TraceParentError::Length { len: 10 }));
        assert_eq!(h[TRACEPARENT], SENT);
        assert!(
            h.get(TRACESTATE).is_none(),
            "the old state went with the old parent"
        );
    }

    #[test]
    fn without_a_span_nothing_is_injected() {
        let mut h = HeaderMap::new();
        assert_eq!(propagate(&mut h), (None, None));
        assert!(h.is_empty());
        h.insert(TRACEPARENT, HeaderValue::from_static("garbage"));
        let (ids, bad) = propagate(&mut h);
        assert_eq!(ids, None);
        assert!(bad.is_some());
        assert_eq!(h[TRACEPARENT], "garbage");
    }
}
