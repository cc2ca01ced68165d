//! A `#[tokio::main]` program (no runtime builder anywhere) watched with one line,
//! `fdr::tokio::watch(Handle::current())`: the dump holds every worker's busy time and parks
//! as metric samples, from which the workers' idle share follows. A test binary of its own
//! with its own `main` (`harness = false`), as a service would be written.

use std::collections::BTreeMap;
use std::time::Duration;

use fdr_format::EventKind;
use tokio::runtime::Handle;

const WORKERS: usize = 2;
/// Each of the two busy tasks blocks its worker this long.
const BUSY: Duration = Duration::from_millis(200);

/// Busy time tokio has published for all workers.
fn published_busy(h: &Handle) -> Duration {
    let m = h.metrics();
    (0..m.num_workers())
        .map(|w| m.worker_total_busy_duration(w))
        .sum()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    fdr::start(fdr::Config {
        flight: Some(fdr::FlightConfig {
            min_age: Duration::from_secs(60),
            max_bytes: 8 << 20,
        }),
        ..fdr::Config::default()
    })
    .unwrap();
    let watch = fdr::tokio::watch_every(Handle::current(), Duration::from_millis(20)).unwrap();
    assert_eq!(watch.workers(), WORKERS);
    let runtime = watch.runtime_label();

    // Idle: the workers park.
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Busy: two tasks each hold a worker.
    let busy: Vec<_> = (0..2)
        .map(|_| tokio::spawn(async { std::thread::sleep(BUSY) }))
        .collect();
    for t in busy {
        t.await.unwrap();
    }
    // tokio publishes a worker's busy time when the worker parks, just after (bounded wait).
    for _ in 0..1000 {
        if published_busy(&Handle::current()) >= 2 * BUSY {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(published_busy(&Handle::current()) >= 2 * BUSY);
    drop(watch); // one last sample

    let mut bytes = Vec::new();
    fdr::flight().write_to(&mut bytes).unwrap();
    let trace = fdr_test_support::trace::decode(&bytes);
    let tables = &trace.tables;
    // name -> (thread, ns, value) in order
    let mut series: BTreeMap<String, Vec<(u32, u64, f64)>> = BTreeMap::new();
    for r in &trace.events {
        if let EventKind::Metric { name, value } = r.event.kind {
            let ns = tables.clock().unwrap().duration_ns(r.event.ts);
            series
                .entry(tables.name(name).into_owned())
                .or_default()
                .push((r.thread.0, ns, value));
        }
    }
    // What watching cannot record: the workers' parks (tokio takes park hooks only on its
    // Builder), so no per-wake evidence, which the diagnosis then says is absent.
    let parks_recorded = trace
        .events
        .iter()
        .filter(|r| matches!(r.event.kind, EventKind::Park | EventKind::Unpark))
        .count();
    assert_eq!(
        parks_recorded, 0,
        "a watched runtime's workers record no parks"
    );
    let watcher = tables
        .threads()
        .find(|(_, t)| t.name == "fdr-tokio-watch")
        .map(|(id, _)| id.0)
        .expect("the watcher's thread is in the trace");

    let (mut busy_ns, mut wall_ns, mut parks) = (0.0, 0.0, 0.0);
    for w in 0..WORKERS {
        let labels = format!("{{runtime=\"{runtime}\",worker=\"{w}\"}}");
        let busy = &series[&format!("tokio_worker_busy_ns{labels}")];
        let park = &series[&format!("tokio_worker_parks{labels}")];
        for s in [busy, park] {
            // The first and the last sample at least, on fdr's own thread, in order, cumulative.
            assert!(s.len() >= 2, "{s:?}");
            assert!(s.iter().all(|(t, _, _)| *t == watcher));
            assert!(s.windows(2).all(|p| p[0].1 <= p[1].1 && p[0].2 <= p[1].2));
        }
        let (first, last) = (busy[0], busy[busy.len() - 1]);
        busy_ns += last.2 - first.2;
        wall_ns += (last.1 - first.1) as f64;
        parks += park[park.len() - 1].2;
    }
    // The two blocked workers' time is all there, and the idle phase made them park.
    assert!(busy_ns >= (2 * BUSY).as_nanos() as f64, "{series:?}");
    assert!(parks >= 1.0, "{series:?}");
    // What the analyzer makes of it: the workers' idle share over the watched window.
    let idle = 1.0 - busy_ns / wall_ns;
    assert!(idle > 0.0 && idle < 1.0, "idle share {idle}");
    for name in ["tokio_global_queue_depth", "tokio_alive_tasks"] {
        let s = &series[&format!("{name}{{runtime=\"{runtime}\"}}")];
        assert!(s.len() >= 2, "{name}: {s:?}");
    }
    println!(
        "tokio_main: {WORKERS} workers, {} samples each, idle share {:.1}%",
        series[&format!("tokio_worker_busy_ns{{runtime=\"{runtime}\",worker=\"0\"}}")].len(),
        100.0 * idle
    );
}
