//! A real hyper server on 127.0.0.1 behind `ServerLayer`, a real hyper client behind
//! `ClientLayer`, the flight recorder dumped and read back: the request's task is named by
//! its route, linked to the trace and span the client sent, its outbound task is a child of
//! the caller's, and the analyzer's `--otel-trace-id` filter finds them. (Own test binary: it
//! installs the global recorder; tests run one at a time.)

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use common::{Trace, dump, runtime, serial, serve, tasks_for_trace};
use fdr_otel::{ClientLayer, ServerLayer, TraceParent};
use fdr_recorder::task::FdrFutureExt as _;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use hyper_util::service::TowerToHyperService;
use opentelemetry::Context;
use opentelemetry::trace::{FutureExt as _, TraceContextExt as _};
use tower::{Layer as _, Service as _, ServiceExt as _};

/// The trace and the caller's span every traced request of these tests is sent from.
const TRACEPARENT: &str = "00-5af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-01";

/// The application: echoes the `traceparent` it received (or `none`), inside a region.
async fn echo(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // A wait (the task goes pending, then is woken), then work in a region.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let _r = fdr_recorder::region("handler");
    let got = req
        .headers()
        .get("traceparent")
        .map(|v| v.to_str().unwrap_or("(not text)").to_owned())
        .unwrap_or_else(|| "none".into());
    Ok(Response::new(Full::new(Bytes::from(got))))
}

/// Where [`app_layer`] makes its layer: the spawn site of the requests' tasks.
const APP_LAYER_LINE: u32 = line!() + 4;

/// Items are named by their route template, everything else by path.
fn app_layer() -> ServerLayer {
    ServerLayer::new().route(|head| {
        if head.uri.path().starts_with("/items/") {
            "/items/{id}".into()
        } else {
            head.uri.path().into()
        }
    })
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends a GET through `ClientLayer`, returns the body.
async fn get(client: &HttpClient, url: String, header: Option<&str>) -> String {
    let mut req = Request::get(url);
    if let Some(h) = header {
        req = req.header("traceparent", h);
    }
    let req = req.body(Full::new(Bytes::new())).unwrap();
    let mut svc = ClientLayer::new().layer(client.clone());
    let resp = svc.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

/// Runs `fut` as the fdr task `caller` with the OTel context of [`TRACEPARENT`] current.
fn as_traced_caller<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    let remote = TraceParent::parse(TRACEPARENT).unwrap().to_span_context();
    fut.with_context(Context::new().with_remote_span_context(remote))
        .traced("caller")
}

#[test]
fn tower_server_and_client_link_the_request_to_the_trace_it_came_from() {
    let _g = serial();
    let rt = runtime();
    let sent = TraceParent::parse(TRACEPARENT).unwrap();
    let (addr, server) = rt.block_on(serve(TowerToHyperService::new(
        app_layer().layer(tower::service_fn(echo)),
    )));
    let client = client();

    let received = rt.block_on(as_traced_caller(get(
        &client,
        format!("http://{addr}/items/42"),
        None,
    )));
    // The client injected the current span; the server saw the same trace and parent.
    assert_eq!(received, TRACEPARENT);
    server.abort();
    drop(rt);

    let bytes = dump();
    let trace = Trace::read(&bytes);
    let request = trace.one("http GET /items/{id}");
    assert_eq!(
        trace.links_of(request),
        vec![(sent.trace_id, sent.span_id)],
        "the request's task carries exactly the ids sent"
    );
    assert_eq!(
        trace.tasks[&request].site,
        format!("{}:{APP_LAYER_LINE}", file!()),
        "the layer's construction site is the spawn site"
    );
    let caller = trace.one("caller");
    let outbound = trace.one(&format!("http client GET {addr}"));
    assert_eq!(trace.tasks[&outbound].parent, caller);
    assert!(trace.tasks[&outbound].is_async);
    assert_eq!(
        trace.links_of(outbound),
        vec![(sent.trace_id, sent.span_id)]
    );
    // The response futures are the traced tasks: polled to completion, and the handler's
    // region ran inside the request's task.
    for t in [request, outbound] {
        let (starts, ready) = trace.polls.get(&t).copied().unwrap_or_default();
        assert!(
            starts >= 1 && ready == 1,
            "task {t}: polls {starts}, ready {ready}"
        );
    }
    assert!(
        trace
            .regions
            .iter()
            .any(|(task, name)| *task == request && name == "handler"),
        "regions: {:?}",
        trace.regions
    );

    // What `fdr tasks dump.fdr --otel-trace-id 5af7...` shows.
    let found = tasks_for_trace(&bytes, sent.trace_id);
    assert!(found.contains("http GET /items/{id}"), "{found:?}");
    assert!(
        found.contains(&format!("http client GET {addr}")),
        "{found:?}"
    );
    let mut other = sent.trace_id;
    other[0] ^= 0xff;
    assert!(tasks_for_trace(&bytes, other).is_empty());
}

#[test]
fn hyper_server_records_requests_without_or_with_a_bad_traceparent() {
    let _g = serial();
    let rt = runtime();
    let (addr, server) = rt.block_on(serve(app_layer().layer(hyper::service::service_fn(echo))));
    let client = client();
    // No OTel context, no header: nothing to inject; the server's task has no link.
    let got = rt.block_on(get(&client, format!("http://{addr}/plain"), None));
    assert_eq!(got, "none");
    // A malformed header is sent as it is (no span to replace it with) and logged.
    let bad = "00-5AF7651916CD43DD8448EB211C80319C-c7ad6b7169203331-01";
    let got = rt.block_on(get(&client, format!("http://{addr}/bad"), Some(bad)));
    assert_eq!(got, bad);
    // A valid header set by the caller is kept, and links through the hyper service too.
    let got = rt.block_on(get(
        &client,
        format!("http://{addr}/items/7"),
        Some(TRACEPARENT),
    ));
    assert_eq!(got, TRACEPARENT);
    server.abort();
    drop(rt);

    let trace = Trace::read(&dump());
    let plain = trace.one("http GET /plain");
    assert!(trace.links_of(plain).is_empty());
    let bad_task = trace.one("http GET /bad");
    assert!(trace.links_of(bad_task).is_empty());
    let why = format!(
        "task {bad_task}: traceparent byte 4: trace id must be lowercase hex, found 'A'; \
         the task has no OpenTelemetry link"
    );
    assert!(
        trace
            .logs
            .iter()
            .any(|(_, cat, msg)| cat == "fdr-otel" && *msg == why),
        "logs: {:?}",
        trace.logs
    );
    // The outbound task of the bad request says it sent the header unchanged.
    let outbound = trace.named(&format!("http client GET {addr}"));
    assert_eq!(outbound.len(), 3, "one per request");
    assert!(
        trace.logs.iter().any(|(_, cat, m)| {
            cat == "fdr-otel"
                && outbound.iter().any(|t| {
                    *m == format!(
                        "task {t}: outgoing traceparent byte 4: trace id must be lowercase \
                         hex, found 'A'; sent it as it was (no OpenTelemetry span is current)"
                    )
                })
        }),
        "logs: {:?}",
        trace.logs
    );
    let sent = TraceParent::parse(TRACEPARENT).unwrap();
    let items: Vec<u64> = trace.named("http GET /items/{id}");
    assert!(
        items
            .iter()
            .any(|t| trace.links_of(*t) == vec![(sent.trace_id, sent.span_id)]),
        "{items:?}"
    );
}

#[test]
fn without_a_router_tasks_are_named_by_method_or_by_path_when_asked() {
    let _g = serial();
    let rt = runtime();
    // A plain hyper service: no router says which route matched.
    let (by_method, a) = rt.block_on(serve(
        ServerLayer::new().layer(hyper::service::service_fn(echo)),
    ));
    let (by_path, b) = rt.block_on(serve(
        ServerLayer::new()
            .route_by_path()
            .layer(hyper::service::service_fn(echo)),
    ));
    let client = client();
    for id in 0..5 {
        rt.block_on(get(&client, format!("http://{by_method}/user/{id}"), None));
    }
    rt.block_on(get(&client, format!("http://{by_path}/fixed/path"), None));
    a.abort();
    b.abort();
    drop(rt);

    let trace = Trace::read(&dump());
    assert_eq!(trace.named("http GET").len(), 5, "{:?}", trace.tasks);
    assert!(
        !trace.tasks.values().any(|t| t.name.contains("/user/")),
        "no task is named by a raw path unless asked: {:?}",
        trace.tasks
    );
    trace.one("http GET /fixed/path");
}
