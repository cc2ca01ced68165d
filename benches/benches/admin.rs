//! The admin endpoint under attack: how long an operator waits for an answer while hostile
//! clients hold at least 512 connections to the endpoint (more than its 256 slots).
//!
//! The endpoint runs as a service would run it (bearer token, default limits) in this
//! process, on its own thread; 720 hostile clients (the attack suite's: pipelining without
//! reading, endless and oversized heads, slow readers, silent connections, requests without
//! credentials, each back a moment after the server closes it) run on a two-thread client
//! runtime, and the operator sends its requests one after another, each on a new connection
//! (as `curl` does) and only while at least 512 hostile connections are open. Latency is
//! from connect to the end of the answer. Figures: `admin.legit_p99_ms_under_hostile_connections`,
//! `admin.legit_p50_ms_under_hostile_connections`, and `admin.hostile_connections_min_held`
//! (the fewest hostile connections open as a request was sent). Linux only.

#![allow(missing_docs, reason = "a bench binary")]

#[path = "../../crates/fdr-admin/tests/common/hostile.rs"]
#[allow(
    unreachable_pub,
    reason = "shared with the attack suite, whose helpers are pub"
)]
mod hostile;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fdr_benches::{median, report};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FIGURE: &str = "admin.legit_p99_ms_under_hostile_connections";
const HOSTILE: usize = 720;
const HELD: usize = 512;
const REQUESTS: usize = 300;
const TOKEN: &str = "bench-T0ken";
/// A request that takes longer is a hang, not a measurement.
const LIVENESS: Duration = Duration::from_secs(30);

fn main() {
    // `cargo bench -- FILTER`: run only if the filter names this bench's figures.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if filter.is_some_and(|f| !FIGURE.contains(f.as_str()) && !f.starts_with("admin")) {
        return;
    }
    if !cfg!(target_os = "linux") {
        return;
    }
    hostile::raise_fd_limit(4096);
    let admin = fdr_admin::Admin::builder()
        .bind(([127, 0, 0, 1], 0))
        .bearer_token(TOKEN)
        .start()
        .expect("the admin endpoint");
    let addr = admin.local_addr();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (latencies_ms, min_held) = rt.block_on(async {
        // Warm up the endpoint and the client.
        for _ in 0..20 {
            operator(addr).await;
        }
        let hostiles = hostile::Hostiles::spawn(addr, HOSTILE);
        let mut latencies_ms = Vec::with_capacity(REQUESTS);
        let mut min_held = usize::MAX;
        let started = Instant::now();
        for _ in 0..REQUESTS {
            let wait = Instant::now();
            while hostiles.open() < HELD {
                assert!(
                    wait.elapsed() < LIVENESS,
                    "the hostile clients do not hold {HELD} connections (now {})",
                    hostiles.open()
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            min_held = min_held.min(hostiles.open());
            let t = Instant::now();
            operator(addr).await;
            latencies_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        eprintln!(
            "admin: {REQUESTS} operator requests in {:.1?} against {HOSTILE} hostile clients (peak {} connections open, {} opened in all)",
            started.elapsed(),
            hostiles.peak(),
            hostiles
                .seen
                .connects
                .load(std::sync::atomic::Ordering::Relaxed)
        );
        hostiles.stop().await;
        (latencies_ms, min_held)
    });
    let mut sorted = latencies_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let p99 = sorted[(sorted.len() - 1) * 99 / 100];
    eprintln!(
        "admin: operator latency ms: p50 {:.2}, p99 {p99:.2}, max {:.2}",
        median(latencies_ms),
        sorted[sorted.len() - 1]
    );
    report(FIGURE, p99);
    report(
        "admin.legit_p50_ms_under_hostile_connections",
        sorted[sorted.len() / 2],
    );
    report("admin.hostile_connections_min_held", min_held as f64);
    admin.shutdown();
}

/// One operator request on a new connection, read to its end; panics unless it is a `200`
/// within [`LIVENESS`].
async fn operator(addr: SocketAddr) {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(
            format!(
                "GET /debug/fdr/ HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(LIVENESS, exchange)
        .await
        .expect("the operator's request was not answered")
        .expect("the operator's request failed");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer[..answer.len().min(200)])
    );
}
