//! A real axum server on 127.0.0.1 with `ServerLayer::new()` inside its `Router`: requests
//! for thousands of distinct ids make tasks named by the route axum matched, never one name
//! per path and never `<overflow>`; a request no route matches is named by its method. (Own
//! test binary, built with the `axum` feature: it installs the global recorder.)

mod common;

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::Path;
use axum::routing::{get, post};
use bytes::Bytes;
use common::{Trace, dump, runtime, serial};
use fdr_otel::{MAX_TASK_NAMES, ServerLayer};
use http::StatusCode;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// More distinct ids than the name table holds.
const IDS: u64 = 2_000;

async fn user(Path(id): Path<u64>) -> String {
    let _db = fdr_recorder::region("db");
    format!("user {id}")
}

async fn order(Path((user, order)): Path<(u64, String)>) -> String {
    format!("{user}/{order}")
}

#[test]
fn thousands_of_ids_make_one_task_name_per_route() {
    assert!(IDS as usize > MAX_TASK_NAMES);
    let _g = serial();
    let rt = runtime();
    let addr = rt.block_on(async {
        let app = Router::new()
            .route("/user/{id}", get(user))
            .route("/user/{id}/orders/{order}", post(order))
            .layer(ServerLayer::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    });
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let send = |method: http::Method, path: String| {
        let req = http::Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"))
            .body(Empty::new())
            .unwrap();
        let client = client.clone();
        async move {
            let resp = client.request(req).await.unwrap();
            let status = resp.status();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, body)
        }
    };
    rt.block_on(async {
        for id in 0..IDS {
            let (status, body) = send(http::Method::GET, format!("/user/{id}")).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body, format!("user {id}").as_bytes());
        }
        for id in 0..3 {
            let path = format!("/user/{id}/orders/o-{id}");
            assert_eq!(send(http::Method::POST, path).await.0, StatusCode::OK);
        }
        // No route matches: axum's fallback answers, named by the method alone.
        let (status, _) = send(http::Method::GET, "/no/such/route/17".into()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    });
    drop(rt);

    let trace = Trace::read(&dump());
    let mut names: BTreeMap<&str, u64> = BTreeMap::new();
    for t in trace.tasks.values() {
        *names.entry(t.name.as_str()).or_default() += 1;
    }
    assert_eq!(
        names.get("http GET /user/{id}").copied(),
        Some(IDS),
        "task names and counts: {names:?}"
    );
    assert_eq!(
        names.get("http POST /user/{id}/orders/{order}").copied(),
        Some(3),
        "{names:?}"
    );
    assert!(!names.keys().any(|n| n.contains("<overflow>")), "{names:?}");
    assert_eq!(names.get("http GET").copied(), Some(1), "{names:?}");
    // Every request task is named by a route template or by the method alone: three
    // names, whatever the ids.
    let http: Vec<&&str> = names.keys().filter(|n| n.starts_with("http ")).collect();
    assert_eq!(http.len(), 3, "{http:?}");
    // Each request is its own task, with the handler's work inside it.
    let users = trace.named("http GET /user/{id}");
    assert!(
        users
            .iter()
            .all(|t| trace.regions.iter().any(|(task, r)| task == t && r == "db")),
        "every user request ran its handler's region in its task"
    );
}
