//! An app instrumented with `tracing` and `FdrLayer`: spans decode as nested regions with
//! their fields logged, events as logs with their fields, and a per-layer filter keeps what it
//! excludes out. (Own test binary: it installs the global recorder.)

use std::time::Duration;

use fdr_format::{EventKind, Message};
use fdr_recorder::{Config, FlightConfig};
use fdr_tracing::FdrLayer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::prelude::*;

#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Begin(String),
    End(String),
    Log(String, String),
}

/// The events of the thread named `thread`, regions and logs only.
fn thread_events(bytes: &[u8], thread: &str) -> Vec<Ev> {
    let trace = fdr_test_support::trace::decode(bytes);
    let id = trace.thread_named(thread).expect("thread in the table");
    let name = |id| trace.tables.name(id).into_owned();
    trace
        .events
        .iter()
        .filter(|r| r.thread == id)
        .filter_map(|r| {
            Some(match r.event.kind {
                EventKind::RegionBegin { name: n } => Ev::Begin(name(n)),
                EventKind::RegionEnd { name: n } => Ev::End(name(n)),
                EventKind::Log { category, message } => Ev::Log(
                    name(category),
                    match message {
                        Message::Interned(id) => name(id),
                        Message::Inline(t) => String::from_utf8_lossy(t).into_owned(),
                    },
                ),
                _ => return None,
            })
        })
        .collect()
}

#[test]
fn spans_nest_as_regions_and_events_are_logs_filters_respected() {
    fdr_recorder::start(Config {
        flight: Some(FlightConfig {
            min_age: Duration::from_secs(60),
            max_bytes: 4 << 20,
        }),
        ..Config::default()
    })
    .unwrap();
    let layer = FdrLayer::new().with_filter(filter_fn(|m| m.target() != "noisy"));
    let subscriber = tracing_subscriber::registry().with(layer);
    std::thread::Builder::new()
        .name("app".into())
        .spawn(move || {
            tracing::subscriber::with_default(subscriber, || {
                let request = tracing::info_span!("request", id = 7);
                let _r = request.enter();
                tracing::info!(target: "app", "started");
                {
                    let db = tracing::info_span!("db");
                    let _d = db.enter();
                    tracing::warn!(target: "app::db", rows = 3, table = "users", "query done");
                    tracing::info!(target: "noisy", "excluded by the filter");
                }
                tracing::debug!(target: "app", elapsed_ms = 12.5);
                // A span excluded by the filter records no region.
                let hidden = tracing::info_span!(target: "noisy", "hidden");
                let _h = hidden.enter();
            });
        })
        .unwrap()
        .join()
        .unwrap();
    let mut dump = Vec::new();
    fdr_recorder::flight().write_to(&mut dump).unwrap();
    let evs = thread_events(&dump, "app");
    assert_eq!(
        evs,
        [
            // The span's fields, at its creation, under its name.
            Ev::Log("request".into(), "id=7".into()),
            Ev::Begin("request".into()),
            Ev::Log("app".into(), "started".into()),
            Ev::Begin("db".into()),
            Ev::Log("app::db".into(), "query done rows=3 table=\"users\"".into()),
            Ev::End("db".into()),
            Ev::Log("app".into(), "elapsed_ms=12.5".into()),
            Ev::End("request".into()),
        ]
    );
}
