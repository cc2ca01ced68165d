//! The `pprof` feature's CPU profile endpoint, on loopback, read by an independent pprof
//! reader (protobuf's Python runtime and the published `profile.proto`). (Own test binary:
//! the recorder and its profiling are process-wide.)
#![cfg(feature = "pprof")]

mod common;
#[path = "../../fdr-pprof/tests/reader/mod.rs"]
mod reader;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::get;
use fdr_admin::Admin;
use tokio::io::AsyncWriteExt;

#[inline(never)]
fn burn_cpu_for_the_profile(stop: &AtomicBool) -> u64 {
    let mut x = 1u64;
    while !stop.load(Ordering::Relaxed) {
        // A recorded thread: the OS view samples the threads that record.
        let _r = fdr_recorder::region!("burn");
        for _ in 0..100_000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    x
}

/// Waits until a capture runs: the endpoint took its slot before starting it.
async fn capture_started() {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !fdr_recorder::capture_running() {
        assert!(
            Instant::now() < deadline,
            "the profile's capture never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_profile_comes_from_the_recorders_samples_one_capture_at_a_time() {
    // Without the OS view there is no profiler: a clear 503, and no cooldown spent.
    fdr_recorder::start(fdr_recorder::Config::default()).unwrap();
    let admin = Admin::builder()
        .bind(([127, 0, 0, 1], 0))
        .capture_cooldown(Duration::ZERO)
        .start()
        .unwrap();
    let addr = admin.local_addr();
    let off = get(addr, "/debug/pprof/profile?seconds=1", &[]).await;
    assert_eq!(off.status, 503, "{}", off.text());
    assert!(
        off.text().contains("OsConfig::platform_default()"),
        "{}",
        off.text()
    );

    fdr_recorder::start(fdr_recorder::Config {
        os: fdr_recorder::OsConfig::platform_default(),
        ..fdr_recorder::Config::default()
    })
    .unwrap();
    let index = get(addr, "/debug/fdr/", &[]).await.text();
    assert!(index.contains("/debug/pprof/profile?seconds=N"), "{index}");
    for bad in ["seconds=0", "seconds=61", "seconds=x", "hz=100"] {
        let r = get(addr, &format!("/debug/pprof/profile?{bad}"), &[]).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }

    let stop = Arc::new(AtomicBool::new(false));
    let burner = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("burner".into())
            .spawn(move || burn_cpu_for_the_profile(&stop))
            .unwrap()
    };
    let first = tokio::spawn(async move { get(addr, "/debug/pprof/profile?seconds=3", &[]).await });
    capture_started().await;
    // One capture at a time: a profile and a trace capture share the slot.
    for busy in [
        "/debug/pprof/profile?seconds=1",
        "/debug/fdr/trace?seconds=1",
    ] {
        let r = get(addr, busy, &[]).await;
        assert_eq!(r.status, 429, "{busy}: {}", r.text());
        assert!(r.retry_after().is_some(), "{:?}", r.headers);
    }
    let r = first.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    burner.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert!(
        r.header("content-disposition")
            .unwrap()
            .ends_with(".pb.gz\""),
        "{:?}",
        r.header("content-disposition")
    );
    let file = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("admin-cpu.pb.gz");
    std::fs::write(&file, &r.body).unwrap();
    let v = reader::read(&file);
    assert_eq!(v["default_sample_type"], "cpu");
    assert_eq!(v["period"], 1_000_000_000 / 99);
    assert_eq!(v["duration_nanos"], 3_000_000_000u64);
    let samples = v["totals"][0].as_i64().unwrap();
    assert!(samples > 0, "no samples");
    let cum = reader::top(&v, "cum");
    let (name, weight) = cum
        .iter()
        .find(|(f, _)| f.ends_with("burn_cpu_for_the_profile"))
        .unwrap_or_else(|| panic!("the busy function is not in the profile: {cum:?}"));
    // The burner ran all along on its own core: most of the CPU samples are its.
    let cpu = v["totals"][1].as_i64().unwrap();
    assert!(
        *weight * 2 > cpu,
        "{name}: {weight} of {cpu} ns: {:?}",
        &cum[..cum.len().min(10)]
    );
    assert!(
        v["samples"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["labels"]["thread"] == "burner"),
        "no sample labelled with the burner thread"
    );

    // A client that leaves ends its profile: the next one may start at once.
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    raw.write_all(
        format!("GET /debug/pprof/profile?seconds=30 HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    capture_started().await;
    assert_eq!(
        get(addr, "/debug/pprof/profile?seconds=1", &[])
            .await
            .status,
        429
    );
    drop(raw);
    let started = Instant::now();
    loop {
        let r = get(addr, "/debug/pprof/profile?seconds=1", &[]).await;
        if r.status == 200 {
            println!(
                "the next profile started {:?} after the client left",
                started.elapsed()
            );
            break;
        }
        assert_eq!(r.status, 429, "{}", r.text());
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the abandoned profile still runs"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
