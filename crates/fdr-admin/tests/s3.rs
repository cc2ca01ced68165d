//! S3: 1,000 concurrent requests to the capture and flight endpoints. At most one capture
//! runs (exactly one 200 within the cooldown, the rest 429 with a numeric Retry-After),
//! snapshots succeed or get 429, nothing hangs, a separate service keeps answering with
//! bounded latency, and the process's memory grows by a bounded amount. (Own test binary: it
//! starts the global recorder.)

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::rss_bytes;
use fdr_admin::Admin;
use http_body_util::{BodyExt, Empty, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

const REQUESTS: usize = 1000;
/// Bounds for a shared 2-core machine, generous on purpose: they catch a blocked service
/// or unbounded buffering, not a slow machine (one stall of the host can hold a single
/// request past the p99's bound, never a blocked service's every request).
const SERVICE_P99_LATENCY: Duration = Duration::from_secs(1);
const SERVICE_MAX_LATENCY: Duration = Duration::from_secs(10);
const RSS_GROWTH_MAX: u64 = 256 << 20;

/// The "service": a hyper server on its own runtime, recording a task and a region per
/// request as an instrumented service would.
fn start_service() -> (tokio::runtime::Runtime, SocketAddr) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("service")
        .enable_all()
        .build()
        .unwrap();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(|_req: Request<hyper::body::Incoming>| async {
                    let _task = fdr_recorder::task("http GET /");
                    let body = fdr_recorder::with_region("render", || Bytes::from_static(b"ok"));
                    Ok::<_, Infallible>(Response::new(Full::new(body)))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (rt, addr)
}

/// Requests the service one after another on a keep-alive connection until `stop`;
/// returns each request's latency.
fn probe(addr: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Duration>> {
    std::thread::Builder::new()
        .name("probe".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let stream = TcpStream::connect(addr).await.unwrap();
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .unwrap();
                tokio::spawn(conn);
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let start = Instant::now();
                    let req = Request::get("/")
                        .header("host", addr.to_string())
                        .body(Empty::<Bytes>::new())
                        .unwrap();
                    let resp = tokio::time::timeout(Duration::from_secs(30), async {
                        let r = sender.send_request(req).await.unwrap();
                        r.into_body().collect().await.unwrap().to_bytes()
                    })
                    .await
                    .expect("the service hung");
                    assert_eq!(&resp[..], b"ok");
                    latencies.push(start.elapsed());
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                latencies
            })
        })
        .unwrap()
}

/// Samples this process's RSS every 10 ms until `stop`; returns the peak.
fn rss_sampler(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = rss_bytes();
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(rss_bytes());
            std::thread::sleep(Duration::from_millis(10));
        }
        peak.max(rss_bytes())
    })
}

fn decodes_whole(trace: &[u8]) -> bool {
    fdr_test_support::trace::check_whole(trace).is_ok()
}

#[derive(Debug)]
struct Outcome {
    capture: bool,
    status: u16,
    retry_after: Option<u64>,
    whole_trace: bool,
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[test]
fn s3_a_thousand_concurrent_captures_and_snapshots_stay_bounded() {
    common::start_recorder();
    // Threads that keep recording, so captures and snapshots carry events.
    let stop_recording = Arc::new(AtomicBool::new(false));
    let recorders: Vec<_> = (0..2)
        .map(|i| {
            let stop = stop_recording.clone();
            std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..1000 {
                            fdr_recorder::with_region("work", || ());
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                })
                .unwrap()
        })
        .collect();

    let (service_rt, service_addr) = start_service();
    let admin = Admin::builder()
        .bind(([127, 0, 0, 1], 0))
        .capture_cooldown(Duration::from_secs(60))
        .start()
        .unwrap();
    let admin_addr = admin.local_addr();

    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("clients")
        .enable_all()
        .build()
        .unwrap();
    // Warm up both servers and the client runtime before measuring memory.
    clients.block_on(async {
        assert_eq!(
            common::get(admin_addr, "/debug/fdr/", &[]).await.status,
            200
        );
        assert_eq!(common::get(service_addr, "/", &[]).await.status, 200);
    });
    std::thread::sleep(Duration::from_millis(200));
    let rss_before = rss_bytes();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = rss_sampler(stop.clone());
    let prober = probe(service_addr, stop.clone());
    std::thread::sleep(Duration::from_millis(100));

    let decoded_bytes = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let outcomes: Vec<Outcome> = clients.block_on(async {
        let tasks: Vec<_> = (0..REQUESTS)
            .map(|i| {
                let decoded_bytes = decoded_bytes.clone();
                tokio::spawn(async move {
                    let capture = i % 2 == 0;
                    let path = if capture {
                        "/debug/fdr/trace?seconds=1"
                    } else {
                        "/debug/fdr/flight"
                    };
                    let r = common::request(admin_addr, "GET", path, &[])
                        .await
                        .unwrap_or_else(|e| panic!("request {i} to {path}: {e}"));
                    let whole_trace = r.status == 200 && decodes_whole(&r.body);
                    if whole_trace {
                        decoded_bytes.fetch_add(r.body.len() as u64, Ordering::Relaxed);
                    }
                    Outcome {
                        capture,
                        status: r.status,
                        retry_after: r.retry_after(),
                        whole_trace,
                    }
                })
            })
            .collect();
        let mut out = Vec::with_capacity(REQUESTS);
        for t in tasks {
            out.push(t.await.expect("a request task panicked"));
        }
        out
    });
    let took = started.elapsed();
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let mut latencies = prober.join().unwrap();
    let rss_peak = sampler.join().unwrap();
    stop_recording.store(true, Ordering::Relaxed);
    for r in recorders {
        r.join().unwrap();
    }

    let captures: Vec<_> = outcomes.iter().filter(|o| o.capture).collect();
    let flights: Vec<_> = outcomes.iter().filter(|o| !o.capture).collect();
    let captured: Vec<_> = captures.iter().filter(|o| o.status == 200).collect();
    let snapshots = flights.iter().filter(|o| o.status == 200).count();
    latencies.sort();
    let (p50, p99, max) = (
        quantile(&latencies, 0.5),
        quantile(&latencies, 0.99),
        *latencies.last().unwrap(),
    );
    let growth = rss_peak.saturating_sub(rss_before);
    println!(
        "S3: {REQUESTS} requests in {took:?}: captures {} ok / {} refused, snapshots {snapshots} ok / {} refused, {} MiB of traces decoded",
        captured.len(),
        captures.len() - captured.len(),
        flights.len() - snapshots,
        decoded_bytes.load(Ordering::Relaxed) >> 20
    );
    println!(
        "S3: service latency over {} requests during the run: p50 {p50:?}, p99 {p99:?}, max {max:?}",
        latencies.len()
    );
    println!(
        "S3: RSS {} MiB before, peak {} MiB, growth {} MiB",
        rss_before >> 20,
        rss_peak >> 20,
        growth >> 20
    );

    // At most one capture: exactly one within the cooldown, the rest told when to retry.
    assert_eq!(captured.len(), 1, "captures that ran: {}", captured.len());
    assert!(captured[0].whole_trace, "the capture does not decode");
    for o in &captures {
        if o.status != 200 {
            assert_eq!(o.status, 429, "{o:?}");
            let secs = o.retry_after.expect("a numeric Retry-After");
            assert!((1..=61).contains(&secs), "{o:?}");
        }
    }
    // Snapshots succeed (and decode) or are told to retry.
    assert!(snapshots >= 1, "no snapshot succeeded");
    for o in &flights {
        match o.status {
            200 => assert!(o.whole_trace, "a snapshot does not decode"),
            429 => assert!(o.retry_after.is_some_and(|s| s >= 1), "{o:?}"),
            _ => panic!("snapshot: {o:?}"),
        }
    }
    assert!(!fdr_recorder::capture_running());
    // The service kept answering.
    assert!(
        latencies.len() >= 10,
        "the probe made {} requests",
        latencies.len()
    );
    assert!(
        p99 < SERVICE_P99_LATENCY && max < SERVICE_MAX_LATENCY,
        "service latency max {max:?} (p99 {p99:?})"
    );
    assert!(growth < RSS_GROWTH_MAX, "RSS grew by {} MiB", growth >> 20);
    admin.shutdown();
    drop(service_rt);
}
