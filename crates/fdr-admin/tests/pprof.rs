//! The `pprof` feature's CPU profile endpoint. (Own test binary: the profiler is
//! process-wide.)
#![cfg(feature = "pprof")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::get;
use fdr_admin::Admin;
use pprof::protos::Message;
use tokio::io::AsyncWriteExt;

#[inline(never)]
fn burn_cpu_for_the_profile(stop: &AtomicBool) -> u64 {
    let mut x = 1u64;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..10_000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    x
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_profile_is_pprof_protobuf_one_at_a_time_and_ends_with_its_client() {
    let admin = Admin::builder().bind(([127, 0, 0, 1], 0)).start().unwrap();
    let addr = admin.local_addr();
    let index = get(addr, "/debug/fdr/", &[]).await.text();
    assert!(index.contains("/debug/pprof/profile?seconds=N"), "{index}");
    for bad in ["seconds=0", "seconds=61", "seconds=x", "hz=100"] {
        let r = get(addr, &format!("/debug/pprof/profile?{bad}"), &[]).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }

    let stop = Arc::new(AtomicBool::new(false));
    let burner = {
        let stop = stop.clone();
        std::thread::spawn(move || burn_cpu_for_the_profile(&stop))
    };
    let first = tokio::spawn(async move { get(addr, "/debug/pprof/profile?seconds=2", &[]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let busy = get(addr, "/debug/pprof/profile?seconds=1", &[]).await;
    assert_eq!(busy.status, 429, "{}", busy.text());
    assert!(
        busy.retry_after().is_some_and(|s| (1..=2).contains(&s)),
        "{:?}",
        busy.headers
    );
    let r = first.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    burner.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert!(r.header("content-disposition").unwrap().ends_with(".pb\""));
    let profile = pprof::protos::Profile::decode(&r.body[..]).expect("pprof protobuf");
    assert!(!profile.sample.is_empty(), "no samples");
    assert!(
        profile
            .string_table
            .iter()
            .any(|s| s.contains("burn_cpu_for_the_profile")),
        "the busy function is not in the profile"
    );

    // A client that leaves ends its profile: the next one may start at once.
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    raw.write_all(
        format!("GET /debug/pprof/profile?seconds=30 HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
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
            started.elapsed() < Duration::from_secs(5),
            "the abandoned profile still runs"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
