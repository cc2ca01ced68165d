//! An `#[instrument]`ed async fn awaited across sleeps on a tokio multi-thread runtime, with
//! `FdrLayer` as the global subscriber: the span is one async region from its first poll to
//! its close (not a region per poll), in the task that awaited it, with its fields and the
//! values recorded later logged under its name. (Own test binary: it installs the global
//! recorder and subscriber.)

use std::collections::BTreeMap;
use std::time::Duration;

use fdr_format::{EventKind, Message};
use fdr_recorder::task::FdrFutureExt;
use fdr_recorder::{Config, FlightConfig};
use fdr_tracing::FdrLayer;
use tracing_subscriber::prelude::*;

const FIRST_SLEEP: Duration = Duration::from_millis(50);
const SECOND_SLEEP: Duration = Duration::from_millis(10);

#[tracing::instrument(fields(rows))]
async fn query(user: u64, table: &'static str) -> u64 {
    tokio::time::sleep(FIRST_SLEEP).await;
    tracing::Span::current().record("rows", 3);
    tokio::time::sleep(SECOND_SLEEP).await;
    user
}

/// What the trace says about names of interest.
#[derive(Debug, Default)]
struct Seen {
    /// Async regions by id: name, task, begin ns, end ns.
    async_regions: BTreeMap<u64, (String, u64, u64, Option<u64>)>,
    /// Region begins and ends by name.
    region_begins: BTreeMap<String, usize>,
    region_ends: BTreeMap<String, usize>,
    /// Logs: (category, message).
    logs: Vec<(String, String)>,
    /// Task names by id, and polls per task.
    tasks: BTreeMap<u64, String>,
    polls: BTreeMap<u64, usize>,
}

fn seen() -> Seen {
    let mut bytes = Vec::new();
    fdr_recorder::flight().write_to(&mut bytes).unwrap();
    let trace = fdr_test_support::trace::decode(&bytes);
    let tables = &trace.tables;
    let mut s = Seen::default();
    for e in trace.events.iter().map(|r| r.event) {
        let ns = tables.clock().unwrap().duration_ns(e.ts);
        let name = |id| tables.name(id).into_owned();
        match e.kind {
            EventKind::AsyncRegionBegin {
                region,
                task,
                name: n,
            } => {
                s.async_regions.insert(region, (name(n), task.0, ns, None));
            }
            EventKind::AsyncRegionEnd { region, task } => {
                let r = s.async_regions.get_mut(&region).expect("begun");
                assert_eq!(r.1, task.0);
                assert!(r.3.replace(ns).is_none(), "ended twice");
            }
            EventKind::RegionBegin { name: n } => *s.region_begins.entry(name(n)).or_default() += 1,
            EventKind::RegionEnd { name: n } => *s.region_ends.entry(name(n)).or_default() += 1,
            EventKind::Log { category, message } => s.logs.push((
                name(category),
                match message {
                    Message::Interned(id) => name(id),
                    Message::Inline(t) => String::from_utf8_lossy(t).into_owned(),
                },
            )),
            EventKind::TaskCreate { task, name: n, .. } => {
                s.tasks.insert(task.0, name(n));
            }
            EventKind::PollStart { task } => *s.polls.entry(task.0).or_default() += 1,
            _ => {}
        }
    }
    s
}

#[test]
fn an_instrumented_async_fn_is_one_async_region_with_its_fields() {
    fdr_recorder::start(Config {
        flight: Some(FlightConfig {
            min_age: Duration::from_secs(60),
            max_bytes: 8 << 20,
        }),
        ..Config::default()
    })
    .unwrap();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(FdrLayer::new()))
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let user = rt.block_on(async {
        tokio::spawn(async { query(7, "users").await }.traced("request"))
            .await
            .unwrap()
    });
    assert_eq!(user, 7);
    // A synchronous span entered once, on this thread.
    tracing::info_span!("sync-step", n = 1).in_scope(|| ());
    // Entered again inside itself: still one region, ended at the outer exit.
    let reentrant = tracing::info_span!("reentrant");
    reentrant.in_scope(|| reentrant.in_scope(|| ()));
    drop(reentrant);
    drop(rt);

    let s = seen();
    let query: Vec<_> = s
        .async_regions
        .values()
        .filter(|r| r.0 == "query")
        .collect();
    assert_eq!(query.len(), 1, "one async region for the span: {s:?}");
    let (_, task, begin, end) = query[0];
    assert_eq!(s.tasks.get(task).map(String::as_str), Some("request"));
    assert!(s.polls[task] >= 3, "the task waited twice: {s:?}");
    let end = end.expect("ended at the span's close");
    assert!(
        end - begin >= (FIRST_SLEEP + SECOND_SLEEP).as_nanos() as u64,
        "the region spans both sleeps: {} ns",
        end - begin
    );
    // Its polls are not regions each: the first entry alone is.
    assert_eq!(s.region_begins.get("query"), Some(&1), "{s:?}");
    assert_eq!(s.region_ends.get("query"), Some(&1), "{s:?}");
    // The span's fields at creation, and the value recorded later, under its name.
    let logs_of = |cat: &str| -> Vec<&str> {
        s.logs
            .iter()
            .filter(|(c, _)| c == cat)
            .map(|(_, m)| m.as_str())
            .collect()
    };
    assert_eq!(logs_of("query"), ["user=7 table=\"users\"", "rows=3"]);
    // The synchronous span stays a region, with its field.
    assert_eq!(s.region_begins.get("sync-step"), Some(&1));
    assert_eq!(s.region_ends.get("sync-step"), Some(&1));
    assert_eq!(logs_of("sync-step"), ["n=1"]);
    assert_eq!(s.region_begins.get("reentrant"), Some(&1), "{s:?}");
    assert_eq!(s.region_ends.get("reentrant"), Some(&1), "{s:?}");
    let reentrant: Vec<_> = s
        .async_regions
        .values()
        .filter(|r| r.0 == "reentrant")
        .collect();
    assert_eq!(reentrant.len(), 1, "{s:?}");
    assert!(reentrant[0].3.is_some(), "ended at the close: {s:?}");
}
