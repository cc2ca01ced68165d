//! The attack suite: a real admin endpoint on loopback against hostile clients. Hundreds of
//! connections that pipeline without reading, read slowly, send endless or oversized headers,
//! or hold a connection without a word never keep an operator with credentials out, and
//! never make the endpoint's memory grow with them; a refused request closes its connection;
//! pipelining and stalled writers are bounded; without credentials, only loopback names (and
//! configured ones) are served; a slow flight download never holds the recorder's snapshot.
//!
//! "Answered" means a response within [`LIVENESS`], a bound on hanging, not on speed. (Own
//! test binary: it starts the global recorder and raises the process's open-file limit.)

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::hostile::{Hostiles, raise_fd_limit};
use common::{Resp, rss_bytes};
use fdr_admin::{Admin, AdminBuilder};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long anything in this suite may take before it counts as not answered.
const LIVENESS: Duration = Duration::from_secs(20);
const TOKEN: &str = "attack-Suite-t0ken";
const BEARER: &str = "Bearer attack-Suite-t0ken";
/// Hostile clients in the big attack; every request of the operator's is sent while at
/// least [`HOSTILE_HELD`] of them hold a connection (the server closes some all the time, and
/// they come back a moment later).
const HOSTILE: usize = 720;
const HOSTILE_HELD: usize = 512;

/// Tests that measure the process's memory, or restart the recorder, take turns.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An admin endpoint on a free loopback port that asks for [`TOKEN`].
fn locked() -> AdminBuilder {
    Admin::builder()
        .bind(([127, 0, 0, 1], 0))
        .bearer_token(TOKEN)
}

/// `GET path` on a new connection, answered within [`LIVENESS`].
async fn answered(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Resp {
    match tokio::time::timeout(LIVENESS, common::request(addr, "GET", path, headers)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => panic!("GET {path}: {e}"),
        Err(_) => panic!("GET {path}: not answered within {LIVENESS:?}"),
    }
}

/// Samples this process's RSS every 10 ms until stopped.
struct RssPeak {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl RssPeak {
    fn start() -> RssPeak {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = rss_bytes();
            while !s.load(Ordering::Relaxed) {
                peak = peak.max(rss_bytes());
                std::thread::sleep(Duration::from_millis(10));
            }
            peak.max(rss_bytes())
        });
        RssPeak { stop, thread }
    }

    fn peak(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// One raw HTTP/1 response.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl std::fmt::Debug for Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Raw")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// What a raw exchange saw: the whole responses, and whether the server closed the
/// connection (within [`LIVENESS`]).
#[derive(Debug)]
struct Exchange {
    responses: Vec<Raw>,
    closed: bool,
}

/// Whole responses at the start of `buf` (bodies by `Content-Length`).
fn parse_responses(mut buf: &[u8]) -> Vec<Raw> {
    let mut out = Vec::new();
    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let rest = &buf[end + 4..];
        if rest.len() < len {
            break;
        }
        out.push(Raw {
            status,
            headers,
            body: rest[..len].to_vec(),
        });
        buf = &rest[len..];
    }
    out
}

/// Sends `request` (raw bytes, as much as the server takes) on a new connection, then reads
/// until the server closes it or [`LIVENESS`] passes.
async fn exchange(addr: SocketAddr, request: &[u8]) -> Exchange {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    // The server may close before taking it all (a head over the cap).
    let _ = s.write_all(request).await;
    let mut buf = Vec::new();
    let read_all = async {
        loop {
            match s.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    let closed = tokio::time::timeout(LIVENESS, read_all).await.is_ok();
    Exchange {
        responses: parse_responses(&buf),
        closed,
    }
}

fn get_with(host: &str, path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_connections_never_keep_an_operator_out() {
    let _turn = TURN.lock().await;
    raise_fd_limit(4096);
    let admin = locked().start().unwrap();
    let addr = admin.local_addr();
    let auth = [("authorization", BEARER)];
    assert_eq!(answered(addr, "/debug/fdr/", &auth).await.status, 200);
    let rss_before = rss_bytes();
    let rss = RssPeak::start();

    let hostiles = Hostiles::spawn(addr, HOSTILE);
    let held = || async {
        let held = tokio::time::timeout(LIVENESS, async {
            while hostiles.open() < HOSTILE_HELD {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(
            held.is_ok(),
            "the hostile clients do not hold {HOSTILE_HELD} connections at once (peak {}, now {})",
            hostiles.peak(),
            hostiles.open()
        );
        hostiles.open()
    };

    // The operator: requests on new connections (as curl makes them) and on one kept-alive
    // connection, in turn, while the attack goes on.
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut kept, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let mut open_during = Vec::new();
    for i in 0..12 {
        let path = if i % 2 == 0 {
            "/debug/fdr/"
        } else {
            "/metrics"
        };
        open_during.push(held().await);
        let r = answered(addr, path, &auth).await;
        assert_eq!(
            r.status,
            200,
            "request {i} on a new connection: {}",
            r.text()
        );
        let req = hyper::Request::get("/debug/fdr/")
            .header("host", addr.to_string())
            .header("authorization", BEARER)
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        held().await;
        let kept_answer = tokio::time::timeout(LIVENESS, async {
            let r = kept.send_request(req).await?;
            let status = r.status();
            r.into_body().collect().await?;
            Ok::<_, hyper::Error>(status)
        })
        .await;
        match kept_answer {
            Ok(Ok(s)) => assert_eq!(s, 200, "request {i} on the kept-alive connection"),
            Ok(Err(e)) => panic!("request {i} on the kept-alive connection: {e}"),
            Err(_) => panic!("request {i} on the kept-alive connection: not answered"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let peak = hostiles.peak();
    let seen = hostiles.seen.clone();
    hostiles.stop().await;
    drop(kept);
    let _ = conn.await;
    let rss_peak = rss.peak();
    let growth = rss_peak.saturating_sub(rss_before);
    println!(
        "hostile connections: peak {peak} open at once, {:?} open as the operator's requests were sent; {} connections opened, {} closed by the server, {} answered 431; RSS {} MiB before, peak {} MiB",
        open_during,
        seen.connects.load(Ordering::Relaxed),
        seen.closed_by_server.load(Ordering::Relaxed),
        seen.too_large.load(Ordering::Relaxed),
        rss_before >> 20,
        rss_peak >> 20,
    );
    assert!(peak >= HOSTILE_HELD, "peak {peak}");
    // Client and server share this process: the clients' buffers and 256 server connections.
    assert!(
        growth < 64 << 20,
        "RSS grew by {} MiB under the attack",
        growth >> 20
    );
    // And after the attack, as before.
    assert_eq!(answered(addr, "/debug/fdr/", &auth).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_closes_its_connection() {
    let admin = locked().start().unwrap();
    let addr = admin.local_addr();
    let host = addr.to_string();
    let creds = format!("Authorization: {BEARER}\r\n");

    let x = exchange(addr, &get_with(&host, "/debug/fdr/", "")).await;
    assert_eq!(x.responses.len(), 1, "{x:?}");
    assert_eq!(x.responses[0].status, 401);
    assert!(x.responses[0].closes(), "a 401 without Connection: close");
    assert!(x.closed, "the connection stayed open after a 401");

    // Requests pipelined behind one without credentials are not answered.
    let x = exchange(addr, &get_with(&host, "/debug/fdr/", "").repeat(3)).await;
    assert_eq!(x.responses.len(), 1, "{x:?}");
    assert_eq!(x.responses[0].status, 401);
    assert!(x.closed);

    // With credentials: a 200 keeps the connection, a 404 (any 4xx) closes it.
    let mut both = get_with(&host, "/debug/fdr/", &creds);
    both.extend(get_with(&host, "/nope", &creds));
    both.extend(get_with(&host, "/debug/fdr/", &creds));
    let x = exchange(addr, &both).await;
    let statuses: Vec<_> = x.responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 404], "{x:?}");
    assert!(!x.responses[0].closes());
    assert!(x.responses[1].closes());
    assert!(x.closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_get_431_and_hold_no_memory() {
    let _turn = TURN.lock().await;
    raise_fd_limit(2048);
    let admin = locked().start().unwrap();
    let addr = admin.local_addr();
    let host = addr.to_string();
    let creds = format!("Authorization: {BEARER}\r\n");
    let pad = |kib: usize| -> String {
        (0..kib)
            .map(|i| format!("X-Pad-{i}: {}\r\n", "p".repeat(1000)))
            .collect()
    };

    // Within the cap: served.
    let x = exchange(
        addr,
        &get_with(&host, "/nope", &format!("{creds}{}", pad(8))),
    )
    .await;
    assert_eq!(x.responses.first().map(|r| r.status), Some(404), "{x:?}");

    // Over it: 431 (or a closed connection), whatever the credentials.
    let x = exchange(
        addr,
        &get_with(&host, "/debug/fdr/", &format!("{creds}{}", pad(64))),
    )
    .await;
    assert!(x.closed, "a 64 KiB head left the connection open: {x:?}");
    for r in &x.responses {
        assert_eq!(r.status, 431, "{r:?}");
    }

    // 300 connections that each send 390 KiB of a head that never ends.
    let rss_before = rss_bytes();
    let rss = RssPeak::start();
    let partial = format!("GET /debug/fdr/ HTTP/1.1\r\nHost: {host}\r\n{}", pad(390));
    let partial = Arc::new(partial.into_bytes());
    let tasks: Vec<_> = (0..300)
        .map(|_| {
            let partial = partial.clone();
            tokio::spawn(async move { exchange(addr, &partial).await })
        })
        .collect();
    for t in tasks {
        let x = t.await.unwrap();
        assert!(x.closed, "a 390 KiB head left the connection open: {x:?}");
        for r in &x.responses {
            assert_eq!(r.status, 431, "{r:?}");
        }
    }
    let growth = rss.peak().saturating_sub(rss_before);
    println!(
        "300 oversized heads: RSS grew by {} KiB at the peak",
        growth >> 10
    );
    assert!(
        growth < 32 << 20,
        "RSS grew by {} MiB for 300 oversized heads",
        growth >> 20
    );
    assert_eq!(
        answered(addr, "/debug/fdr/", &[("authorization", BEARER)])
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_bounded() {
    let admin = Admin::builder().bind(([127, 0, 0, 1], 0)).start().unwrap();
    let addr = admin.local_addr();
    let x = exchange(
        addr,
        &get_with(&addr.to_string(), "/debug/fdr/", "").repeat(200),
    )
    .await;
    assert!(x.closed, "200 pipelined requests kept the connection open");
    let n = x.responses.len();
    assert_eq!(
        n,
        fdr_admin::DEFAULT_MAX_PIPELINED_REQUESTS as usize,
        "answered {n} of 200 pipelined requests"
    );
    assert!(x.responses.iter().all(|r| r.status == 200));
    assert!(x.responses[n - 1].closes(), "{:?}", x.responses[n - 1]);
    assert!(!x.responses[0].closes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_slot_is_taken_an_operator_still_gets_in() {
    raise_fd_limit(1024);
    let admin = locked().max_connections(8).start().unwrap();
    let addr = admin.local_addr();
    let auth = [("authorization", BEARER)];
    // An operator's kept-alive connection, then 64 connections that say nothing.
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut kept, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let kept_get = |kept: &mut hyper::client::conn::http1::SendRequest<_>| {
        let req = hyper::Request::get("/debug/fdr/")
            .header("host", addr.to_string())
            .header("authorization", BEARER)
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let sent = kept.send_request(req);
        async move {
            let answered = tokio::time::timeout(LIVENESS, async {
                let r = sent.await?;
                let status = r.status();
                r.into_body().collect().await?;
                Ok::<_, hyper::Error>(status)
            });
            answered
                .await
                .expect("the kept-alive connection was not answered")
                .expect("the kept-alive connection failed")
        }
    };
    assert_eq!(kept_get(&mut kept).await, 200);
    let mut silent = Vec::new();
    for _ in 0..64 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    for i in 0..3 {
        let r = answered(addr, "/debug/fdr/", &auth).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
    }
    assert_eq!(
        kept_get(&mut kept).await,
        200,
        "the operator's connection was dropped"
    );
    drop(kept);
    let _ = conn.await;
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_disconnected() {
    // Its tens of MiB of expositions would count in the memory the attack tests measure.
    let _turn = TURN.lock().await;
    // A registry whose exposition is about 1.5 MiB, so a few answers fill any socket buffer.
    let registry = prometheus::Registry::new();
    let big = prometheus::IntGaugeVec::new(
        prometheus::Opts::new("attack_filler", "Makes /metrics large."),
        &["series"],
    )
    .unwrap();
    for i in 0..30_000 {
        big.with_label_values(&[&format!("series-number-{i:08}")])
            .set(i);
    }
    registry.register(Box::new(big)).unwrap();
    let admin = Admin::builder()
        .bind(([127, 0, 0, 1], 0))
        .registry(registry)
        .write_timeout(Duration::from_secs(1))
        .start()
        .unwrap();
    let addr = admin.local_addr();
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    let req = get_with(&addr.to_string(), "/metrics", "");
    stalled.write_all(&req.repeat(8)).await.unwrap();

    let closed_for_writes = || async {
        let r = answered(addr, "/metrics", &[]).await;
        let e = common::parse_exposition(&r.text()).unwrap();
        e.value(
            "fdr_admin_connections_closed_total",
            &[("reason", "write_timeout")],
        )
        .unwrap_or(0.0)
    };
    let counted = tokio::time::timeout(LIVENESS, async {
        while closed_for_writes().await < 1.0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(
        counted.is_ok(),
        "a client that stopped reading was not disconnected"
    );
    // What the client gets when it reads at last: the start of its answers, then the end.
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let ended = tokio::time::timeout(LIVENESS, async {
        loop {
            match stalled.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stalled connection is still open");
    let one = answered(addr, "/metrics", &[]).await.body.len();
    assert!(
        got < 8 * one,
        "the stalled client got all 8 answers ({got} bytes)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_only_loopback_and_configured_hosts_are_served() {
    let admin = Admin::builder()
        .bind(([127, 0, 0, 1], 0))
        .allowed_hosts(["fdr.internal", "10.1.2.3"])
        .start()
        .unwrap();
    let addr = admin.local_addr();
    let port = addr.port();
    for host in [
        "localhost".to_owned(),
        format!("localhost:{port}"),
        "LOCALHOST.".to_owned(),
        format!("127.0.0.1:{port}"),
        "127.0.0.1".to_owned(),
        format!("[::1]:{port}"),
        "[::1]".to_owned(),
        "fdr.internal".to_owned(),
        "FDR.Internal:8080".to_owned(),
        "10.1.2.3:6060".to_owned(),
    ] {
        let x = exchange(
            addr,
            &get_with(&host, "/debug/fdr/", "Connection: close\r\n"),
        )
        .await;
        assert_eq!(
            x.responses.first().map(|r| r.status),
            Some(200),
            "Host: {host}: {x:?}"
        );
    }
    for host in [
        "evil.example".to_owned(),
        format!("evil.example:{port}"),
        "localhost.evil.example".to_owned(),
        "127.0.0.1.nip.io".to_owned(),
        "fdr.internal.evil.example".to_owned(),
        "10.1.2.4".to_owned(),
        String::new(),
    ] {
        let x = exchange(addr, &get_with(&host, "/debug/fdr/", "")).await;
        let r = x
            .responses
            .first()
            .unwrap_or_else(|| panic!("{host}: {x:?}"));
        assert_eq!(r.status, 421, "Host: {host:?}");
        let text = String::from_utf8_lossy(&r.body);
        assert_eq!(text.lines().count(), 1, "one line: {text:?}");
        assert!(text.contains("Host"), "{text}");
        assert!(x.closed, "Host: {host:?}");
    }
    // An absolute URI names the host too; a request with no Host at all (HTTP/1.0, a
    // low-level client; never a browser, so never a rebound name) is served.
    let x = exchange(
        addr,
        b"GET http://evil.example/debug/fdr/ HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await;
    assert_eq!(x.responses.first().map(|r| r.status), Some(421), "{x:?}");
    let x = exchange(addr, b"GET /debug/fdr/ HTTP/1.0\r\n\r\n").await;
    assert_eq!(x.responses.first().map(|r| r.status), Some(200), "{x:?}");

    // With credentials, they are the gate: any Host is served to whoever has them.
    let authed = locked().start().unwrap();
    let x = exchange(
        authed.local_addr(),
        &get_with(
            "evil.example",
            "/debug/fdr/",
            &format!("Authorization: {BEARER}\r\nConnection: close\r\n"),
        ),
    )
    .await;
    assert_eq!(x.responses.first().map(|r| r.status), Some(200), "{x:?}");
}

/// Starts the recorder with a 48 MiB window and fills 40 MiB of it.
fn fill_a_big_window() {
    fdr_recorder::start(fdr_recorder::Config {
        flight: Some(fdr_recorder::FlightConfig {
            min_age: Duration::from_secs(600),
            max_bytes: 48 << 20,
        }),
        ..Default::default()
    })
    .unwrap();
    // Logs of about 1 KiB each fill it fast.
    let pad = "f".repeat(1000);
    let mut n = 0u64;
    while fdr_recorder::stats().ring_bytes < 40 << 20 {
        for _ in 0..1000 {
            n += 1;
            fdr_recorder::log!("attack", "{n} {pad}");
        }
    }
}

fn decodes_whole(trace: &[u8]) -> bool {
    fdr_test_support::trace::check_whole(trace).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_flight_download_does_not_hold_the_recorder() {
    let _turn = TURN.lock().await;
    tokio::task::spawn_blocking(fill_a_big_window)
        .await
        .unwrap();
    let admin = Admin::builder().bind(([127, 0, 0, 1], 0)).start().unwrap();
    let (resp, _conn) = common::open(admin.local_addr(), "GET", "/debug/fdr/flight", &[])
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let length: Option<usize> = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let mut body = resp.into_body();
    let mut got = Vec::new();
    // Read a little, slowly, and snapshot meanwhile: the download holds no snapshot.
    for _ in 0..4 {
        let frame = tokio::time::timeout(LIVENESS, body.frame())
            .await
            .expect("the download stalled")
            .expect("the download ended early")
            .expect("the download failed");
        if let Ok(data) = frame.into_data() {
            got.extend_from_slice(&data);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let snapshot = tokio::task::spawn_blocking(|| {
        let mut out = Vec::new();
        fdr_recorder::flight().write_to(&mut out).map(|_| out)
    })
    .await
    .unwrap();
    let snapshot = match snapshot {
        Ok(s) => s,
        Err(e) => panic!("a snapshot while a download is being read: {e}"),
    };
    assert!(decodes_whole(&snapshot));
    // The download is whole.
    let rest = tokio::time::timeout(LIVENESS, body.collect())
        .await
        .expect("the download stalled")
        .expect("the download failed")
        .to_bytes();
    got.extend_from_slice(&rest);
    assert!(got.len() > 32 << 20, "{} bytes", got.len());
    assert_eq!(length, Some(got.len()), "Content-Length");
    assert!(decodes_whole(&got));
}

/// A writer that blocks at its first write until released: holds the recorder's snapshot.
struct Held {
    started: std::sync::mpsc::Sender<()>,
    release: std::sync::mpsc::Receiver<()>,
    waited: bool,
}

impl Write for Held {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if !self.waited {
            self.waited = true;
            let _ = self.started.send(());
            let _ = self.release.recv_timeout(LIVENESS);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_recorder_is_a_429_with_retry_after() {
    let _turn = TURN.lock().await;
    common::start_recorder();
    let admin = Admin::builder().bind(([127, 0, 0, 1], 0)).start().unwrap();
    // Snapshots run side by side up to the recorder's bound: hold every slot.
    let mut releases = Vec::new();
    let mut holders = Vec::new();
    for _ in 0..fdr_recorder::MAX_SNAPSHOTS {
        let (started_tx, started) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel();
        holders.push(std::thread::spawn(move || {
            let mut w = Held {
                started: started_tx,
                release: release_rx,
                waited: false,
            };
            fdr_recorder::flight().write_to(&mut w).map(|_| ())
        }));
        started.recv_timeout(LIVENESS).unwrap();
        releases.push(release);
    }
    let r = answered(admin.local_addr(), "/debug/fdr/flight", &[]).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.retry_after().is_some_and(|s| s >= 1), "{:?}", r.headers);
    for release in releases {
        release.send(()).unwrap();
    }
    for holder in holders {
        holder.join().unwrap().unwrap();
    }
    let r = answered(admin.local_addr(), "/debug/fdr/flight", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(decodes_whole(&r.body));
}
