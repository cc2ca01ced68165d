//! Hostile HTTP/1 clients for the admin endpoint's attack suite and its bench: each holds one
//! connection to the endpoint, misbehaving in its own way, and opens a new one a moment after
//! the server closes it, until stopped. None of them has credentials; all send a loopback
//! `Host`, so what stops them is the connection handling, not the Host check.
//!
//! Shared by `crates/fdr-admin/tests/attack.rs` and `benches/benches/admin.rs` (included there
//! by path), so the bench measures the attack the suite checks.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How one hostile client misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Pipelines batches of requests and never reads a response.
    Pipeline,
    /// Sends a request head one byte every half second, never finishing it.
    Slowloris,
    /// Sends 512 KiB of header lines, then waits for an answer.
    OversizedHeaders,
    /// Sends one request, then reads its answer 16 bytes every half second.
    SlowReader,
    /// Connects and sends nothing.
    Idle,
    /// Sends a request without credentials every half second on the same connection,
    /// reading each answer.
    NoCredentials,
}

/// Every kind, in the order [`Hostiles::spawn`] deals them out.
pub const KINDS: [Kind; 6] = [
    Kind::Pipeline,
    Kind::Slowloris,
    Kind::OversizedHeaders,
    Kind::SlowReader,
    Kind::Idle,
    Kind::NoCredentials,
];

/// What the hostile clients saw, shared between them.
#[derive(Debug, Default)]
pub struct Seen {
    /// Connections open now.
    pub open: AtomicUsize,
    /// The most connections open at once.
    pub peak: AtomicUsize,
    /// Connections opened in all.
    pub connects: AtomicU64,
    /// Connections the server closed (EOF, reset or a failed write).
    pub closed_by_server: AtomicU64,
    /// `431` answers seen by [`Kind::OversizedHeaders`] clients.
    pub too_large: AtomicU64,
}

/// A crowd of hostile clients (tokio tasks on the current runtime).
pub struct Hostiles {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// What they saw.
    pub seen: Arc<Seen>,
}

impl Hostiles {
    /// Starts `n` clients against `addr`, kinds dealt out in turn. Must be called within a
    /// tokio runtime with the `net`, `time` and `io-util` features.
    pub fn spawn(addr: SocketAddr, n: usize) -> Hostiles {
        let (stop, rx) = watch::channel(false);
        let seen = Arc::new(Seen::default());
        let tasks = (0..n)
            .map(|i| {
                let kind = KINDS[i % KINDS.len()];
                // Spread reconnections out: 200 to 340 ms after a close.
                let pause = Duration::from_millis(200 + (i as u64 % 8) * 20);
                tokio::spawn(client(addr, kind, pause, rx.clone(), seen.clone()))
            })
            .collect();
        Hostiles { stop, tasks, seen }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.seen.open.load(Ordering::Relaxed)
    }

    /// The most connections open at once so far.
    pub fn peak(&self) -> usize {
        self.seen.peak.load(Ordering::Relaxed)
    }

    /// Stops every client and waits for them to close their connections.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Counts a connection as open for as long as it lives.
struct Open(Arc<Seen>);

impl Open {
    fn new(seen: &Arc<Seen>) -> Open {
        let now = seen.open.fetch_add(1, Ordering::Relaxed) + 1;
        seen.peak.fetch_max(now, Ordering::Relaxed);
        seen.connects.fetch_add(1, Ordering::Relaxed);
        Open(seen.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn client(
    addr: SocketAddr,
    kind: Kind,
    pause: Duration,
    mut stop: watch::Receiver<bool>,
    seen: Arc<Seen>,
) {
    while !*stop.borrow() {
        let Ok(mut stream) = TcpStream::connect(addr).await else {
            // Out of file descriptors or ports for a moment.
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(pause) => continue,
            }
        };
        let open = Open::new(&seen);
        tokio::select! {
            _ = stop.changed() => return,
            () = misbehave(&mut stream, kind, &seen) => {
                seen.closed_by_server.fetch_add(1, Ordering::Relaxed);
            }
        }
        drop(stream);
        drop(open);
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

const HALF_SECOND: Duration = Duration::from_millis(500);

/// Misbehaves on `s` until the server closes it.
async fn misbehave(s: &mut TcpStream, kind: Kind, seen: &Seen) {
    let request = b"GET /debug/fdr/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    match kind {
        Kind::Pipeline => {
            let batch = request.repeat(64);
            // Written until a write fails: the server closed.
            while s.write_all(&batch).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Kind::Slowloris => {
            if s.write_all(b"GET /debug/fdr/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .await
                .is_err()
            {
                return;
            }
            loop {
                tokio::time::sleep(HALF_SECOND).await;
                if s.write_all(b"a").await.is_err() {
                    return;
                }
            }
        }
        Kind::OversizedHeaders => {
            if s.write_all(b"GET /debug/fdr/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                .await
                .is_err()
            {
                return;
            }
            let line = format!("X-Pad: {}\r\n", "a".repeat(1016));
            let piece = line.repeat(16);
            for _ in 0..32 {
                if s.write_all(piece.as_bytes()).await.is_err() {
                    break;
                }
            }
            // The head is never finished: wait for the server's answer or close.
            let mut answer = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = s.read(&mut buf).await {
                if answer.len() < 64 {
                    answer.extend_from_slice(&buf[..n]);
                }
            }
            if answer.starts_with(b"HTTP/1.1 431") {
                seen.too_large.fetch_add(1, Ordering::Relaxed);
            }
        }
        Kind::SlowReader => {
            if s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .await
                .is_err()
            {
                return;
            }
            let mut buf = [0u8; 16];
            loop {
                tokio::time::sleep(HALF_SECOND).await;
                match s.read(&mut buf).await {
                    Ok(1..) => {}
                    _ => return,
                }
            }
        }
        Kind::Idle => {
            let mut buf = [0u8; 256];
            while let Ok(1..) = s.read(&mut buf).await {}
        }
        Kind::NoCredentials => {
            let mut buf = [0u8; 4096];
            loop {
                if s.write_all(request).await.is_err() {
                    return;
                }
                match s.read(&mut buf).await {
                    Ok(1..) => {}
                    _ => return,
                }
                tokio::time::sleep(HALF_SECOND).await;
            }
        }
    }
}

/// Raises this process's soft limit on open files to its hard limit, and fails with a clear
/// message if that leaves fewer than `needed`.
pub fn raise_fd_limit(needed: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let (soft, hard) = (limit.current, limit.maximum);
    if let Some(hard) = hard
        && soft.is_none_or(|s| s < hard)
    {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            },
        )
        .unwrap_or_else(|e| {
            panic!("could not raise RLIMIT_NOFILE from {soft:?} to its hard limit {hard}: {e}")
        });
    }
    let now = getrlimit(Resource::Nofile).current;
    assert!(
        now.is_none_or(|n| n >= needed),
        "this needs {needed} open files, and RLIMIT_NOFILE allows {now:?} (hard limit {hard:?}); \
         raise the hard limit (ulimit -Hn) to run it"
    );
}
