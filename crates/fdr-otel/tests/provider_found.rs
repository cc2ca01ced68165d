//! An application on fdr-otel's OpenTelemetry release with its SDK tracer provider installed
//! globally: no warning on the first request (even one no span covers: the global provider
//! is probed), the probe exports nothing, and spans made by the global tracer get
//! `fdr.task_id`. (Own test binary: the check's result is process-wide.)

mod common;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Trace, dump, runtime, serial, serve};
use fdr_otel::opentelemetry::trace::{FutureExt as _, TraceContextExt as _, Tracer as _};
use fdr_otel::opentelemetry::{Context, Value, global};
use fdr_otel::{LOG_CATEGORY, ProviderStatus, ServerLayer, TASK_ID_KEY};
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use hyper_util::service::TowerToHyperService;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tower::{Layer as _, ServiceExt as _};

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"hello"))))
}

#[test]
fn a_global_provider_of_fdrs_release_is_found_and_its_spans_get_the_task_id() {
    let _g = serial();
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    global::set_tracer_provider(provider.clone());
    assert_eq!(fdr_otel::provider_status(), ProviderStatus::Unchecked);

    let app = ServerLayer::new().layer(tower::service_fn(hello));
    // `/bare` is served without an OTel span (a health check, say): the first request.
    let otel = tower::service_fn(move |req: Request<Incoming>| {
        let cx = if req.uri().path() == "/bare" {
            Context::new()
        } else {
            Context::current_with_span(global::tracer("app").start("GET /traced"))
        };
        app.clone().oneshot(req).with_context(cx)
    });
    let rt = runtime();
    let (addr, server) = rt.block_on(serve(TowerToHyperService::new(otel)));
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let get = |path: &str| {
        let req = Request::get(format!("http://{addr}{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let body = rt.block_on(async {
            let resp = client.request(req).await.unwrap();
            resp.into_body().collect().await.unwrap().to_bytes()
        });
        assert_eq!(&body[..], b"hello");
    };
    get("/bare");
    assert_eq!(fdr_otel::provider_status(), ProviderStatus::Found);
    get("/traced");
    let deadline = Instant::now() + Duration::from_secs(5);
    let span = loop {
        let spans = exporter.get_finished_spans().unwrap();
        if let Some(s) = spans.iter().find(|s| s.name == "GET /traced") {
            // The probe span was dropped by the default (parent-based) sampler.
            assert_eq!(spans.len(), 1, "{spans:?}");
            break s.clone();
        }
        assert!(Instant::now() < deadline, "spans: {spans:?}");
        std::thread::sleep(Duration::from_millis(5));
    };
    server.abort();
    drop(rt);

    let trace = Trace::read(&dump());
    let tasks = trace.named("http GET");
    assert_eq!(tasks.len(), 2);
    let id = span
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == TASK_ID_KEY)
        .map(|kv| kv.value.clone());
    assert_eq!(id, Some(Value::I64(tasks[1] as i64)), "{span:?}");
    assert!(
        !trace.logs.iter().any(|(_, cat, _)| cat == LOG_CATEGORY),
        "no warning: {:?}",
        trace.logs
    );
    provider.shutdown().unwrap();
}
