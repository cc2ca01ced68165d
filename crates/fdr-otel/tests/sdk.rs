//! With the OpenTelemetry SDK: a server span made by an OTel middleware outside
//! `ServerLayer` gets `fdr.task_id` and the trace URL, and the request's task links to that
//! span; `annotate` and `task_in_context` do the same by hand. (Own test binary: it installs
//! the global recorder; tests run one at a time.)

mod common;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Trace, dump, runtime, serial, serve};
use fdr_otel::{ServerLayer, TASK_ID_KEY, TRACE_URL_KEY, TraceParent, UrlTemplate};
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use hyper_util::service::TowerToHyperService;
use opentelemetry::trace::{
    FutureExt as _, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tower::{Layer as _, ServiceExt as _};

const TRACEPARENT: &str = "00-6bf92f3577b34da6a3ce929d0e0e4736-10f067aa0ba902b7-01";
const TEMPLATE: &str =
    "https://fdr.example/open?pid={pid}&task={task_id}&trace={trace_id}&span={span_id}";

fn provider() -> (SdkTracerProvider, InMemorySpanExporter) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    (provider, exporter)
}

/// The finished span named `name` (waits up to 5 s: the server ends it after answering).
fn finished(exporter: &InMemorySpanExporter, name: &str) -> SpanData {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let spans = exporter.get_finished_spans().unwrap();
        if let Some(s) = spans.into_iter().find(|s| s.name == name) {
            return s;
        }
        assert!(Instant::now() < deadline, "span {name} never finished");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv: &&KeyValue| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"hello"))))
}

#[test]
fn a_server_span_gets_the_task_id_and_the_trace_url() {
    let _g = serial();
    let (provider, exporter) = provider();
    let tracer = provider.tracer("fdr-otel-test");
    let template = UrlTemplate::new(TEMPLATE).unwrap();
    let app = ServerLayer::new()
        .trace_url(template.clone())
        .layer(tower::service_fn(hello));
    // What an OpenTelemetry HTTP middleware does, outside fdr's layer: extract the caller's
    // span from `traceparent`, start a server span under it, run the request in its context.
    let otel = tower::service_fn(move |req: Request<Incoming>| {
        let parent = match req
            .headers()
            .get("traceparent")
            .and_then(|v| TraceParent::parse_bytes(v.as_bytes()).ok())
        {
            Some(ids) => Context::new().with_remote_span_context(ids.to_span_context()),
            None => Context::new(),
        };
        let span = tracer.start_with_context("GET /sdk", &parent);
        let cx = parent.with_span(span);
        app.clone().oneshot(req).with_context(cx)
    });
    let rt = runtime();
    let (addr, server) = rt.block_on(serve(TowerToHyperService::new(otel)));
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = Request::get(format!("http://{addr}/sdk"))
        .header("traceparent", TRACEPARENT)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let body = rt.block_on(async {
        let resp = client.request(req).await.unwrap();
        resp.into_body().collect().await.unwrap().to_bytes()
    });
    assert_eq!(&body[..], b"hello");
    let span = finished(&exporter, "GET /sdk");
    server.abort();
    drop(rt);

    let sent = TraceParent::parse(TRACEPARENT).unwrap();
    assert_eq!(span.span_context.trace_id().to_bytes(), sent.trace_id);
    assert_eq!(span.parent_span_id.to_bytes(), sent.span_id);
    let trace = Trace::read(&dump());
    // A plain tower service has no router to say which route matched: the method names it.
    let task = trace.one("http GET");
    assert_eq!(
        attribute(&span, TASK_ID_KEY),
        Some(&Value::I64(task as i64)),
        "{:?}",
        span.attributes
    );
    let own_span = span.span_context.span_id().to_bytes();
    let url = template.render(fdr_recorder::TaskId(task), sent.trace_id, own_span);
    assert_eq!(attribute(&span, TRACE_URL_KEY), Some(&Value::from(url)));
    // The server span is a local span of the header's trace, so the task links to it: the
    // span the APM shows for this service.
    assert_eq!(trace.links_of(task), vec![(sent.trace_id, own_span)]);
    provider.shutdown().unwrap();
}

#[test]
fn annotate_and_task_in_context_use_the_active_span() {
    let _g = serial();
    let (provider, exporter) = provider();
    let tracer = provider.tracer("fdr-otel-test");
    let ids;
    let task_id;
    {
        let span = tracer.start("job");
        let cx = Context::current_with_span(span);
        ids = TraceParent::from_context(&cx).unwrap();
        let task = fdr_otel::task_in_context("otel job", &cx);
        task_id = task.id();
        assert!(fdr_otel::annotate(&cx, task.id(), None));
        cx.span().end();
        // An ended span records nothing more.
        assert!(!fdr_otel::annotate(&cx, task.id(), None));
    }
    let span = finished(&exporter, "job");
    assert_eq!(
        attribute(&span, TASK_ID_KEY),
        Some(&Value::I64(task_id.0 as i64))
    );
    assert_eq!(attribute(&span, TRACE_URL_KEY), None, "no template given");
    let trace = Trace::read(&dump());
    let task = trace.one("otel job");
    assert_eq!(task, task_id.0);
    assert!(!trace.tasks[&task].is_async);
    assert_eq!(trace.links_of(task), vec![(ids.trace_id, ids.span_id)]);
    provider.shutdown().unwrap();
}
