//! An axum service behind `fdr_otel::ServerLayer`: each request is an fdr task named by the
//! route axum matched (`http GET /user/{id}`), however many ids clients send.
//!
//! ```sh
//! cargo run -p fdr-otel --features axum --example axum [REQUESTS]
//! ```
//!
//! Serves the router on 127.0.0.1 (an ephemeral port), sends it REQUESTS (default 2,000)
//! requests for distinct user ids and one for `/health`, dumps the flight recorder, and
//! prints the task names the dump holds with their counts (what `fdr tasks` would list).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use bytes::Bytes;
use fdr_analyzer::{EventCx, ReadOptions, Visitor, read_slice};
use fdr_format::EventKind;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

async fn user(Path(id): Path<u64>) -> String {
    let _db = fdr_recorder::region("db");
    format!("user {id}")
}

/// Counts the tasks of a trace by name.
#[derive(Default)]
struct TaskNames(BTreeMap<String, u64>);

impl Visitor for TaskNames {
    fn event(&mut self, cx: &EventCx<'_>) {
        if let EventKind::TaskCreate { name, .. } = cx.kind {
            *self.0.entry(cx.tables.name(name).into_owned()).or_default() += 1;
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let requests: u64 = match std::env::args().nth(1) {
        Some(n) => n.parse().map_err(|e| format!("REQUESTS {n:?}: {e}"))?,
        None => 2_000,
    };
    fdr_recorder::start(fdr_recorder::Config {
        flight: Some(fdr_recorder::FlightConfig {
            min_age: Duration::from_secs(60),
            max_bytes: 16 << 20,
        }),
        ..fdr_recorder::Config::default()
    })?;

    let app = Router::new()
        .route("/user/{id}", get(user))
        .route("/health", get(|| async { "ok" }))
        // Inside the router, so the layer sees the route axum matched.
        .layer(fdr_otel::ServerLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    for id in 0..requests {
        let resp = client
            .get(format!("http://{addr}/user/{id}").parse()?)
            .await?;
        let body = resp.into_body().collect().await?.to_bytes();
        assert_eq!(body, format!("user {id}").as_bytes());
    }
    client.get(format!("http://{addr}/health").parse()?).await?;
    server.abort();

    let mut dump = Vec::new();
    fdr_recorder::flight().write_to(&mut dump)?;
    let mut names = TaskNames::default();
    let out = read_slice(&dump, &mut names, ReadOptions::default())?;
    if let Some(e) = out.error {
        return Err(format!("the dump is damaged: {e}").into());
    }
    println!(
        "{} requests; tasks in the dump ({} bytes):",
        requests + 1,
        dump.len()
    );
    for (name, n) in &names.0 {
        println!("{n:>8}  {name}");
    }
    Ok(())
}
