//! On-demand captures over HTTP: decodable, holding what was recorded during them, ended
//! by a client's disconnect, by the byte cap and by a client that does not read; the
//! cooldown; the degraded guard. (Own test binary: it starts the global recorder. The
//! capture slot is process-wide, so the tests take turns.)

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::get;
use fdr_admin::{Admin, AdminBuilder};
use fdr_format::{Batch, Decoder, EventKind, Message, Tables};
use http_body_util::BodyExt;

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Takes this test's turn with the process-wide capture slot, with the recorder started.
async fn turn() -> tokio::sync::MutexGuard<'static, ()> {
    let g = TURN.lock().await;
    common::start_recorder();
    g
}

/// An admin endpoint on a free loopback port, with `cooldown` between captures.
fn capturing(cooldown: Duration) -> AdminBuilder {
    Admin::builder()
        .bind(([127, 0, 0, 1], 0))
        .capture_cooldown(cooldown)
}

/// A thread that records regions named `name` (and a log every 1000) until stopped.
struct Recording {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Recording {
    /// `paced`: sleep 1 ms every 1000 regions.
    fn start(name: &'static str, paced: bool) -> Recording {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("rec-{name}"))
            .spawn(move || {
                let mut n = 0u64;
                while !s.load(Ordering::Relaxed) {
                    fdr_recorder::with_region(name, || ());
                    n += 1;
                    if n.is_multiple_of(1000) {
                        fdr_recorder::log!("capture-test", "{name} {n}");
                        if paced {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                }
                n
            })
            .unwrap();
        Recording {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a decoded trace holds: region begins by name, logs, and whether it ended cleanly.
#[derive(Debug, Default)]
struct Seen {
    regions: std::collections::HashMap<String, u64>,
    logs: Vec<String>,
    batches: u64,
}

fn decode(trace: &[u8]) -> Result<Seen, String> {
    let mut d = Decoder::new(trace).map_err(|e| e.to_string())?;
    let mut tables = Tables::new();
    let mut seen = Seen::default();
    while let Some(b) = d.next_batch() {
        match b.map_err(|e| e.to_string())? {
            Batch::Table(t) => tables.apply(&t).map_err(|e| e.to_string())?,
            Batch::Events(b) => {
                seen.batches += 1;
                for e in b.events() {
                    match e.map_err(|e| e.to_string())?.kind {
                        EventKind::RegionBegin { name } => {
                            *seen
                                .regions
                                .entry(tables.name(name).into_owned())
                                .or_default() += 1;
                        }
                        EventKind::Log {
                            message: Message::Inline(m),
                            ..
                        } => seen.logs.push(String::from_utf8_lossy(m).into_owned()),
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(seen)
}

async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_is_a_decodable_trace_of_what_was_recorded_during_it() {
    let _turn = turn().await;
    let admin = capturing(Duration::ZERO).start().unwrap();
    let during = Recording::start("during-capture", true);
    let started = Instant::now();
    let r = get(admin.local_addr(), "/debug/fdr/trace?seconds=1", &[]).await;
    let took = started.elapsed();
    let recorded = during.stop();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    let disposition = r.header("content-disposition").unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"fdr-trace-")
            && disposition.ends_with(".fdr\""),
        "{disposition}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "a 1 s capture took {took:?}"
    );
    let seen = decode(&r.body).expect("the capture decodes whole, end marker included");
    let n = seen.regions.get("during-capture").copied().unwrap_or(0);
    assert!(n > 0, "no region recorded during the capture: {seen:?}");
    assert!(n <= recorded, "{n} > {recorded}");
    assert!(
        seen.logs.iter().any(|l| l.starts_with("during-capture ")),
        "no log from the capture"
    );
    assert!(!fdr_recorder::capture_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_disconnect_ends_the_capture_at_once() {
    let _turn = turn().await;
    let admin = capturing(Duration::ZERO).start().unwrap();
    let addr = admin.local_addr();
    let (resp, conn) = common::open(addr, "GET", "/debug/fdr/trace?seconds=30", &[])
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    // The file header arrives as soon as the collector begins the capture.
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("the capture's first bytes")
        .expect("a frame")
        .expect("data");
    assert!(first.data_ref().is_some_and(|d| d.starts_with(b"\x89FDR")));
    assert!(fdr_recorder::capture_running());
    // The client goes away: the connection is dropped, nothing more is read.
    drop(body);
    conn.abort();
    let _ = conn.await;
    let took = wait_until("the capture stops", Duration::from_secs(3), || {
        !fdr_recorder::capture_running()
    })
    .await;
    println!("capture stopped {took:?} after the client disconnected");
    // With no cooldown, the next capture may start as soon as the endpoint has given
    // the slot back (just after the recorder's capture ends).
    let freed = Instant::now();
    let r = loop {
        let r = get(addr, "/debug/fdr/trace?seconds=1", &[]).await;
        if r.status != 429 || freed.elapsed() > Duration::from_secs(3) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(r.status, 200, "{}", r.text());
    decode(&r.body).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_byte_cap_ends_a_capture_at_the_cap_with_a_whole_trace() {
    let _turn = turn().await;
    let cap = 512 << 10;
    let admin = capturing(Duration::ZERO)
        .max_capture_bytes(cap)
        .start()
        .unwrap();
    let busy = Recording::start("busy", false);
    let started = Instant::now();
    let r = get(admin.local_addr(), "/debug/fdr/trace?seconds=20", &[]).await;
    let took = started.elapsed();
    busy.stop();
    assert_eq!(r.status, 200, "{}", r.text());
    let len = r.body.len() as u64;
    println!("capped capture: {len} bytes of a {cap}-byte cap in {took:?}");
    assert!(len <= cap, "{len} bytes over the {cap}-byte cap");
    // The cap falls between two batches: at most one chunk short of it.
    assert!(
        len > cap - fdr_recorder::CHUNK_BYTES as u64 - 1024,
        "{len} bytes: cut well before the cap"
    );
    assert!(
        took < Duration::from_secs(15),
        "the cap did not end the capture: {took:?}"
    );
    let seen = decode(&r.body).expect("a capped capture still decodes whole");
    assert!(
        seen.regions.get("busy").copied().unwrap_or(0) > 1000,
        "{seen:?}"
    );
    wait_until("the capture stops", Duration::from_secs(2), || {
        !fdr_recorder::capture_running()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_loses_its_capture_instead_of_growing_memory() {
    let _turn = turn().await;
    let admin = capturing(Duration::ZERO)
        .max_capture_bytes(1 << 40)
        .start()
        .unwrap();
    let busy = Recording::start("flood", false);
    let (resp, _conn) = common::open(
        admin.local_addr(),
        "GET",
        "/debug/fdr/trace?seconds=30",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    // Not reading: the queue fills, and the capture stops long before its 30 s.
    let took = wait_until("the capture stops", Duration::from_secs(20), || {
        !fdr_recorder::capture_running()
    })
    .await;
    busy.stop();
    println!("an unread capture stopped after {took:?}");
    // Reading now: what was queued, then an error (a cut response, not a clean end).
    let collected = tokio::time::timeout(Duration::from_secs(20), resp.into_body().collect()).await;
    assert!(
        matches!(collected, Ok(Err(_))),
        "the body ended cleanly after the capture was dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captures_are_one_at_a_time_with_a_cooldown_and_retry_after() {
    let _turn = turn().await;
    // Long enough that the request after the first capture comes within it on a slow host.
    let cooldown = Duration::from_secs(5);
    let admin = capturing(cooldown).start().unwrap();
    let addr = admin.local_addr();
    let first = tokio::spawn(async move { get(addr, "/debug/fdr/trace?seconds=2", &[]).await });
    wait_until(
        "the capture starts",
        Duration::from_secs(5),
        fdr_recorder::capture_running,
    )
    .await;
    let running = get(addr, "/debug/fdr/trace?seconds=1", &[]).await;
    assert_eq!(running.status, 429, "{}", running.text());
    let secs = running.retry_after().expect("a numeric Retry-After");
    // The rest of the running capture plus the cooldown.
    assert!((5..=8).contains(&secs), "Retry-After {secs}");
    assert!(running.text().contains("running"), "{}", running.text());
    assert_eq!(first.await.unwrap().status, 200);
    let cooling = get(addr, "/debug/fdr/trace?seconds=1", &[]).await;
    assert_eq!(cooling.status, 429, "{}", cooling.text());
    let secs = cooling.retry_after().expect("a numeric Retry-After");
    assert!((1..=5).contains(&secs), "Retry-After {secs}");
    assert!(cooling.text().contains("cooldown"), "{}", cooling.text());
    // After Retry-After, it is allowed again.
    tokio::time::sleep(Duration::from_secs(secs) + Duration::from_millis(100)).await;
    let again = get(addr, "/debug/fdr/trace?seconds=1", &[]).await;
    assert_eq!(again.status, 200, "{}", again.text());
    // Metrics count what happened.
    let m = get(addr, "/metrics", &[]).await.text();
    let e = common::parse_exposition(&m).unwrap();
    assert_eq!(e.value("fdr_admin_captures_total", &[]), Some(2.0));
    assert_eq!(
        e.value("fdr_admin_captures_refused_total", &[("reason", "running")]),
        Some(1.0)
    );
    assert_eq!(
        e.value(
            "fdr_admin_captures_refused_total",
            &[("reason", "cooldown")]
        ),
        Some(1.0)
    );
    assert!(e.value("fdr_admin_capture_bytes_total", &[]).unwrap() > 0.0);
    // Let the cooldown pass for whoever takes the next turn.
    tokio::time::sleep(cooldown + Duration::from_millis(100)).await;
}

#[cfg(feature = "sentinel")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_degraded_process_refuses_on_demand_captures_when_asked_to() {
    let _turn = turn().await;
    let dir = std::env::temp_dir().join(format!("fdr-admin-degraded-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sentinel = fdr_sentinel::Sentinel::builder()
        .interval(Duration::from_millis(20))
        .rule(fdr_sentinel::Rule::above(
            "always",
            "fdr_recorder_events",
            fdr_sentinel::Stat::Value,
            -1.0,
        ))
        .dir(&dir, fdr_sentinel::Retention::default())
        .log_with(|_| {})
        .start()
        .unwrap();
    let guarded = capturing(Duration::ZERO)
        .sentinel(&sentinel)
        .refuse_captures_when_degraded(true)
        .start()
        .unwrap();
    let unguarded = capturing(Duration::ZERO)
        .sentinel(&sentinel)
        .start()
        .unwrap();
    wait_until(
        "the sentinel reports degraded",
        Duration::from_secs(5),
        || sentinel.degraded(),
    )
    .await;
    let r = get(guarded.local_addr(), "/debug/fdr/trace?seconds=1", &[]).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        r.text().contains("degraded") && r.text().contains("always"),
        "{}",
        r.text()
    );
    // The flight recorder stays available.
    let flight = get(guarded.local_addr(), "/debug/fdr/flight", &[]).await;
    assert!(matches!(flight.status, 200 | 429), "{}", flight.text());
    // Without the flag, a degraded process may still be captured.
    let r = get(unguarded.local_addr(), "/debug/fdr/trace?seconds=1", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Once the sentinel stops, it reports nothing.
    sentinel.stop();
    let r = get(guarded.local_addr(), "/debug/fdr/trace?seconds=1", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flight_download_a_client_does_not_read_holds_no_snapshot_and_is_cut_at_the_timeout() {
    let _turn = turn().await;
    // A window larger than what the response queue and the socket buffers hold.
    fdr_recorder::start(fdr_recorder::Config {
        flight: Some(fdr_recorder::FlightConfig {
            min_age: Duration::from_secs(60),
            max_bytes: 48 << 20,
        }),
        ..Default::default()
    })
    .unwrap();
    let fill = Recording::start("fill-the-ring", false);
    wait_until("the ring fills", Duration::from_secs(60), || {
        fdr_recorder::stats().ring_bytes >= 40 << 20
    })
    .await;
    fill.stop();
    // Long enough that the snapshot below and the next request come before it on a slow
    // host; the wait for the cut allows 20 s.
    let timeout = Duration::from_secs(5);
    let admin = Admin::builder()
        .bind(([127, 0, 0, 1], 0))
        .transfer_timeout(timeout)
        .start()
        .unwrap();
    let (resp, _conn) = common::open(admin.local_addr(), "GET", "/debug/fdr/flight", &[])
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Not reading: the download was spooled, so the recorder is free at once...
    fdr_recorder::flight()
        .write_to(&mut std::io::sink())
        .expect("a snapshot while a download is unread");
    // ...while this endpoint sends one flight download at a time.
    let busy = get(admin.local_addr(), "/debug/fdr/flight", &[]).await;
    assert_eq!(busy.status, 429, "{}", busy.text());
    assert_eq!(busy.retry_after(), Some(1));
    // Still not reading: at the transfer timeout the download ends, and the endpoint sends
    // snapshots again.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let next = get(admin.local_addr(), "/debug/fdr/flight", &[]).await;
        if next.status == 200 {
            break;
        }
        assert_eq!(next.status, 429, "{}", next.text());
        assert!(Instant::now() < deadline, "the unread download never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The response was cut, not ended as if complete.
    let collected = tokio::time::timeout(Duration::from_secs(20), resp.into_body().collect()).await;
    assert!(
        matches!(collected, Ok(Err(_))),
        "the cut snapshot ended cleanly"
    );
}
