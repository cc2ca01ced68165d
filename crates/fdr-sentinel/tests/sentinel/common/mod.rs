//! Helpers shared by the sentinel's integration tests.
#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(unreachable_pub, reason = "a test helper module")]

mod meta;

pub(crate) use meta::meta;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fdr_sentinel::{IncidentMeta, Rule, Sentinel, SentinelBuilder, SentinelStats};

/// Region names in a trace, in order, per batch.
pub fn region_names(trace: &[u8]) -> Vec<String> {
    fdr_test_support::trace::decode(trace).region_names()
}

/// Waits up to `limit` for `done`.
pub fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    done()
}

/// Waits up to `limit` for the sentinel's statistics to reach `done`; if they never do,
/// fails with them (and the lines of `log`, when given).
pub fn wait_for_stats(
    sentinel: &Sentinel,
    limit: Duration,
    log: Option<&Mutex<Vec<String>>>,
    done: impl Fn(&SentinelStats) -> bool,
) {
    let reached = wait_for(limit, || done(&sentinel.stats()));
    match log {
        Some(lines) => assert!(
            reached,
            "{:?} {:?}",
            sentinel.stats(),
            lines.lock().unwrap()
        ),
        None => assert!(reached, "{:?}", sentinel.stats()),
    }
}

/// A log that keeps its lines.
pub fn log() -> (
    Arc<Mutex<Vec<String>>>,
    impl Fn(&str) + Send + Sync + 'static,
) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    (lines, move |line: &str| {
        l.lock().unwrap().push(line.to_owned())
    })
}

/// A fresh directory under the system's temporary one.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("fdr-sentinel-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A sentinel of service version 9.9.9 sampling every 20 ms a registry of its own, with
/// the tests' `deep: queue_depth value > 100 for 2 cooldown 1h` rule, writing into the
/// store `store` names: returns the rule's gauge, the sentinel's log and the sentinel.
pub fn deep_sentinel(
    store: impl FnOnce(SentinelBuilder) -> SentinelBuilder,
) -> (prometheus::IntGauge, Arc<Mutex<Vec<String>>>, Sentinel) {
    let registry = prometheus::Registry::new();
    let queue = prometheus::IntGauge::new("queue_depth", "requests waiting").unwrap();
    registry.register(Box::new(queue.clone())).unwrap();
    let (lines, log) = log();
    let builder = Sentinel::builder()
        .interval(Duration::from_millis(20))
        .registry(registry)
        .rule(Rule::parse("deep: queue_depth value > 100 for 2 cooldown 1h").unwrap());
    let sentinel = store(builder)
        .service_version("9.9.9")
        .log_with(log)
        .start()
        .unwrap();
    (queue, lines, sentinel)
}

/// The one incident of the tests' `deep: queue_depth value > 100 for 2` rule, fired at
/// 500 by a sentinel of service version 9.9.9, after a region "before the breach": checks
/// its sidecar and its dump, and returns the sidecar.
pub fn the_deep_incident(sentinel: &Sentinel, stats: &SentinelStats) -> IncidentMeta {
    let listing = sentinel.store().list().unwrap();
    assert!(listing.unreadable.is_empty());
    let [m] = &listing.incidents[..] else {
        panic!("{listing:?}")
    };
    assert_eq!(Some(&m.id), stats.last_incident.as_ref());
    assert_eq!(
        (m.rule.as_str(), m.metric.as_str()),
        ("deep", "queue_depth")
    );
    assert_eq!((m.value, m.threshold), (500.0, 100.0));
    assert_eq!(m.condition, "deep: queue_depth value > 100 for 2");
    assert_eq!(m.service_version.as_deref(), Some("9.9.9"));
    assert_eq!(m.pid, std::process::id());
    assert!(m.id.ends_with("Z-deep"), "{}", m.id);
    let mut dump = Vec::new();
    std::io::Read::read_to_end(&mut sentinel.store().open(&m.id).unwrap(), &mut dump).unwrap();
    assert_eq!(dump.len() as u64, m.bytes);
    assert_eq!(stats.bytes_written, m.bytes);
    // The sidecar names the process as the dump's header does.
    let header = fdr_format::Decoder::new(&dump)
        .unwrap()
        .process_info()
        .clone();
    assert_eq!(m.host, header.host);
    assert!(!m.host.is_empty());
    assert_eq!(m.pid, header.pid);
    assert_eq!(m.service.as_deref(), Some(header.service.as_str()));
    assert_eq!(m.fdr_version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(m.fdr_version.as_deref(), Some(header.fdr_version.as_str()));
    assert_eq!(m.build_id.as_deref(), Some(header.build_id.as_str()));
    assert_eq!(
        m.process_start_unix_ms,
        Some(header.process_start_unix_ns / 1_000_000)
    );
    let regions = region_names(&dump);
    assert!(
        regions.iter().any(|r| r == "before the breach"),
        "{regions:?}"
    );
    m.clone()
}
