//! The axum service with fdr wired in (see the library's docs and docs/OPERATIONS.md).
//!
//! ```text
//! axum-service [--listen ADDR] [--admin ADDR] [--incidents DIR] [--fault lock] [--fault-after DURATION]
//! ```
//!
//! Serves on `--listen` (default 127.0.0.1:3000), fdr's admin endpoint on `--admin`
//! (default 127.0.0.1:6060), keeps the sentinel's incidents in `--incidents` (default
//! `incidents`; `FDR_SENTINEL_*` variables override the sentinel's settings). `--fault lock`
//! switches the fault on, `--fault-after 10s` that long after the start. Stops on Ctrl-C or
//! SIGTERM, after in-flight requests.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum_service::telemetry::{HttpMetrics, SpanTally, Telemetry};
use axum_service::{App, Fault, RELOAD_CALL, RELOAD_EVERY};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The SLO the sentinel guards: p99 latency of `GET /user/{id}` under 50 ms, checked every
/// 500 ms; three breaching samples in a row dump the flight recorder 2 s later, so the
/// incident holds the aftermath too.
const RULE: &str =
    r#"slow_requests: http_request_duration_seconds{route="/user/{id}"} p99 > 50ms for 3 delay 2s"#;

/// One round trip to the profile store.
const STORE_LATENCY: Duration = Duration::from_millis(1);

struct Args {
    listen: SocketAddr,
    admin: SocketAddr,
    incidents: PathBuf,
    fault: Option<Fault>,
    fault_after: Duration,
}

const USAGE: &str = "usage: axum-service [--listen ADDR] [--admin ADDR] [--incidents DIR] \
                     [--fault lock] [--fault-after DURATION (500ms, 10s)]";

impl Args {
    fn parse() -> Result<Args, String> {
        let mut args = Args {
            listen: ([127, 0, 0, 1], 3000).into(),
            admin: ([127, 0, 0, 1], 6060).into(),
            incidents: PathBuf::from("incidents"),
            fault: None,
            fault_after: Duration::ZERO,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .ok_or_else(|| format!("{flag} needs a value; {USAGE}"))
            };
            let address = |v: String| {
                v.parse::<SocketAddr>()
                    .map_err(|e| format!("{flag} {v:?}: {e} (an address and port: 127.0.0.1:3000)"))
            };
            match flag.as_str() {
                "--listen" => args.listen = address(value()?)?,
                "--admin" => args.admin = address(value()?)?,
                "--incidents" => args.incidents = value()?.into(),
                "--fault" => args.fault = Some(value()?.parse()?),
                "--fault-after" => args.fault_after = duration(&value()?)?,
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument `{other}`; {USAGE}")),
            }
        }
        Ok(args)
    }
}

/// `500ms`, `10s`.
fn duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("--fault-after {text:?}: expected a duration such as 500ms or 10s");
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| text.split_at(i))
        .ok_or_else(bad)?;
    let n: u64 = number.parse().map_err(|_| bad())?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        _ => Err(bad()),
    }
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("axum-service: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), BoxError> {
    let args = Args::parse()?;

    // fdr: the flight recorder always on (the last 10 s, at most 64 MiB); a panic dumps it
    // among the sentinel's incidents; tokio's workers watched (busy time, parks).
    fdr::start(fdr::Config {
        service_version: env!("CARGO_PKG_VERSION").into(),
        ..fdr::Config::default()
    })?;
    fdr::dump_on_panic(&args.incidents);
    let _watch = fdr::tokio::watch(tokio::runtime::Handle::current())?;

    // `tracing`: INFO and above printed, everything recorded by fdr (spans as regions,
    // events and span fields as logs).
    tracing_subscriber::registry()
        .with(fdr::tracing::FdrLayer::new())
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_filter(LevelFilter::INFO),
        )
        .init();

    // OpenTelemetry 0.33 (fdr's release): a tracer provider, global, with a batch exporter.
    let spans = SpanTally::default();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(spans.clone())
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    tracing::info!(
        "OpenTelemetry tracer provider: {:?}",
        fdr::otel::check_provider()
    );

    // Prometheus: the latency histogram; its series exist before the first request, so the
    // sentinel's rule finds its metric from the first sample.
    let registry = prometheus::Registry::new();
    let http = HttpMetrics::register(&registry)?;
    http.touch("GET", "/user/{id}", "200");

    // The sentinel and the admin endpoint.
    let sentinel = fdr::sentinel::Sentinel::builder()
        .rule(fdr::sentinel::Rule::parse(RULE)?)
        .interval(Duration::from_millis(500))
        .registry(registry.clone())
        .dir(&args.incidents, fdr::sentinel::Retention::default())
        .service_version(env!("CARGO_PKG_VERSION"))
        .log_with(|line| tracing::warn!("sentinel: {line}"))
        .from_env()?
        .start()?;
    let admin = fdr::admin::Admin::builder()
        .bind(args.admin)
        .sentinel(&sentinel)
        .registry(registry)
        .start()?;

    let app = Arc::new(App::new(STORE_LATENCY));
    if let Some(fault) = args.fault {
        let app = app.clone();
        let after = args.fault_after;
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            app.set_fault(fault, true);
            tracing::warn!(
                "fault `{fault}` on: one cache lookup in {RELOAD_EVERY} reloads from the store \
                 with a {RELOAD_CALL:?} blocking call while holding the cache lock"
            );
        });
    }

    let router = axum_service::router(
        app,
        Telemetry {
            exporter: spans.clone(),
            http,
        },
    );
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(
        "listening on http://{}, admin endpoint on http://{}, incidents in {}",
        listener.local_addr()?,
        admin.local_addr(),
        args.incidents.display()
    );
    tracing::info!("sentinel rule: {RULE}");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown())
        .await?;

    // Stopped: flush the spans, stop the sentinel (a dump under way finishes) and the admin
    // endpoint.
    provider.shutdown()?;
    let (exported, linked) = spans.counts();
    let stats = sentinel.stats();
    tracing::info!(
        "stopped: {exported} spans exported, {linked} with {}; sentinel: {} samples, {} incidents written",
        fdr::otel::TASK_ID_KEY,
        stats.samples,
        stats.dumps_written
    );
    sentinel.stop();
    admin.shutdown();
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::warn!("no SIGTERM handler ({e}): stop with Ctrl-C");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}
