//! Reads a registry holding a counter, a gauge and a histogram through the sentinel, as an
//! application depending on `prometheus` with its default features (`protobuf` on) would.

use fdr_sentinel::{MetricValue, Metrics};

fn main() {
    let r = prometheus::Registry::new();
    let c = prometheus::IntCounter::new("requests_total", "requests").unwrap();
    let g = prometheus::Gauge::new("queue_depth", "queued").unwrap();
    let h = prometheus::Histogram::with_opts(
        prometheus::HistogramOpts::new("latency_seconds", "latency").buckets(vec![0.1, 1.0]),
    )
    .unwrap();
    r.register(Box::new(c.clone())).unwrap();
    r.register(Box::new(g.clone())).unwrap();
    r.register(Box::new(h.clone())).unwrap();
    c.inc_by(3);
    g.set(7.0);
    h.observe(0.5);
    let mut m = Metrics::new();
    fdr_sentinel::metric::add_prometheus(&r, &mut m);
    assert_eq!(m["requests_total"], MetricValue::Counter(3.0), "{m:?}");
    assert_eq!(m["queue_depth"], MetricValue::Gauge(7.0), "{m:?}");
    let MetricValue::Histogram(h) = &m["latency_seconds"] else {
        panic!("{m:?}")
    };
    assert_eq!(h.count, 1);
    assert_eq!(h.buckets, [(0.1, 0), (1.0, 1), (f64::INFINITY, 1)]);
    println!("fdr-sentinel read counter, gauge and histogram with prometheus's default features");
}
