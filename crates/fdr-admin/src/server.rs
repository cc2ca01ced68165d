//! The server: its own thread and single-threaded tokio runtime, the accept loop that keeps
//! the connections within their bound (see [`crate::conn`]), and the handle that stops it.

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{CONNECTION, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Semaphore, oneshot};

use crate::auth::Auth;
use crate::body::{Body, OnDrop};
use crate::conn::{Conn, Slot, Table, Watched};
use crate::host::Hosts;
use crate::{
    AdminBuilder, ConfigError, Error, MAX_BLOCKING_THREADS, MAX_HEADER_BYTES, MIN_CAPTURE_BYTES,
    MIN_HEADER_BYTES,
};

/// The listen backlog: connections the kernel queues while the accept loop waits.
const BACKLOG: u32 = 1024;
/// How long open connections get to finish when the endpoint shuts down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// Incident listings and downloads served at once.
const STORE_PERMITS: usize = 2;
/// After a connection's last answer: how long it reads and drops what the client still
/// sends, and how much at most, so that closing it does not reset the connection under
/// that answer.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 256 << 10;

/// What the endpoint counts about itself (exported in `/metrics`).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) captures: AtomicU64,
    pub(crate) capture_bytes: AtomicU64,
    pub(crate) captures_refused_running: AtomicU64,
    pub(crate) captures_refused_cooldown: AtomicU64,
    pub(crate) captures_refused_degraded: AtomicU64,
    pub(crate) snapshots: AtomicU64,
    pub(crate) snapshots_refused: AtomicU64,
    pub(crate) unauthorized: AtomicU64,
    pub(crate) misdirected: AtomicU64,
    pub(crate) evicted: AtomicU64,
    pub(crate) header_timeouts: AtomicU64,
    pub(crate) write_timeouts: AtomicU64,
    pub(crate) heads_too_large: AtomicU64,
    pub(crate) pipelining_closes: AtomicU64,
}

/// Everything a request handler reads.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) auth: Auth,
    /// The names an endpoint without credentials answers to.
    pub(crate) hosts: Hosts,
    #[cfg(feature = "sentinel")]
    pub(crate) sentinel: Option<fdr_sentinel::SentinelHandle>,
    pub(crate) registries: Vec<prometheus::Registry>,
    pub(crate) capture_cooldown: Duration,
    pub(crate) max_capture_bytes: u64,
    #[cfg_attr(
        not(feature = "sentinel"),
        allow(dead_code, reason = "only a sentinel can report the process degraded")
    )]
    pub(crate) refuse_when_degraded: bool,
    pub(crate) transfer_timeout: Duration,
    /// Where flight snapshots are spooled.
    pub(crate) spool_dir: PathBuf,
    pub(crate) max_pipelined_requests: u32,
    /// The open connections.
    pub(crate) table: Arc<Table>,
    /// A snapshot started here is being written or sent.
    pub(crate) flight_busy: AtomicBool,
    #[cfg_attr(
        not(feature = "sentinel"),
        allow(dead_code, reason = "the store is the sentinel's")
    )]
    pub(crate) store_permits: Arc<Semaphore>,
    /// One `/metrics` rendering at a time (user registries may be slow to gather).
    pub(crate) metrics_permit: Semaphore,
    pub(crate) counters: Counters,
}

/// The running admin endpoint. Dropping it (or [`AdminHandle::shutdown`]) stops the server;
/// [`AdminHandle::detach`] leaves it running for the rest of the process.
#[derive(Debug)]
#[must_use = "dropping the handle stops the admin endpoint"]
pub struct AdminHandle {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl AdminHandle {
    /// The address the endpoint listens on (with the port the system picked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, gives open connections a second to finish (a running capture is
    /// stopped), and waits for the `fdr-admin` thread to end.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    /// Leaves the endpoint running until the process exits.
    pub fn detach(mut self) {
        if let Some(stop) = self.stop.take() {
            std::mem::forget(stop);
        }
        self.thread.take();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for AdminHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Whether `ip` only reaches this host.
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

pub(crate) fn start(b: AdminBuilder) -> Result<AdminHandle, Error> {
    let auth = Auth::new(b.bearer.as_deref(), b.basic.as_ref())?;
    if !is_loopback(b.addr.ip()) && !auth.required() {
        return Err(Error::Unauthenticated { addr: b.addr });
    }
    if b.max_capture_bytes < MIN_CAPTURE_BYTES {
        return Err(Error::Config(ConfigError::MaxCaptureBytes {
            max_capture_bytes: b.max_capture_bytes,
            min: MIN_CAPTURE_BYTES,
        }));
    }
    if b.max_connections == 0 {
        return Err(Error::Config(ConfigError::ZeroMaxConnections));
    }
    for (name, d) in [
        ("transfer_timeout", b.transfer_timeout),
        ("header_read_timeout", b.header_read_timeout),
        ("write_timeout", b.write_timeout),
        ("eviction_grace", b.eviction_grace),
    ] {
        if d.is_zero() {
            return Err(Error::Config(ConfigError::ZeroDuration { setting: name }));
        }
    }
    if !(MIN_HEADER_BYTES..=MAX_HEADER_BYTES).contains(&b.max_header_bytes) {
        return Err(Error::Config(ConfigError::MaxHeaderBytes {
            max_header_bytes: b.max_header_bytes,
            min: MIN_HEADER_BYTES,
            max: MAX_HEADER_BYTES,
        }));
    }
    if b.max_pipelined_requests == 0 {
        return Err(Error::Config(ConfigError::ZeroMaxPipelinedRequests));
    }
    let hosts = Hosts::new(&b.allowed_hosts)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .thread_name("fdr-admin-blocking")
        .on_thread_start(|| fdr_recorder::cost::register_thread(fdr_recorder::cost::Role::Admin))
        .build()
        .map_err(Error::Start)?;
    let listener = {
        let _entered = runtime.enter();
        listen(b.addr).map_err(|source| Error::Bind {
            addr: b.addr,
            source,
        })?
    };
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: b.addr,
        source,
    })?;
    let limits = Limits {
        max_connections: b.max_connections,
        header_read_timeout: b.header_read_timeout,
        write_timeout: b.write_timeout,
        eviction_grace: b.eviction_grace,
        max_header_bytes: b.max_header_bytes,
    };
    let state = Arc::new(State {
        auth,
        hosts,
        #[cfg(feature = "sentinel")]
        sentinel: b.sentinel,
        registries: b.registries,
        capture_cooldown: b.capture_cooldown,
        max_capture_bytes: b.max_capture_bytes,
        refuse_when_degraded: b.refuse_when_degraded,
        transfer_timeout: b.transfer_timeout,
        spool_dir: b.spool_dir.unwrap_or_else(std::env::temp_dir),
        max_pipelined_requests: b.max_pipelined_requests,
        table: Arc::new(Table::new()),
        flight_busy: AtomicBool::new(false),
        store_permits: Arc::new(Semaphore::new(STORE_PERMITS)),
        metrics_permit: Semaphore::new(1),
        counters: Counters::default(),
    });
    let (stop_tx, stop_rx) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("fdr-admin".into())
        .spawn(move || {
            fdr_recorder::cost::register_thread(fdr_recorder::cost::Role::Admin);
            runtime.block_on(accept_loop(listener, state, limits, stop_rx));
            runtime.shutdown_timeout(SHUTDOWN_GRACE);
        })
        .map_err(Error::Start)?;
    Ok(AdminHandle {
        addr,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

/// The bounds on connections.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_connections: usize,
    header_read_timeout: Duration,
    write_timeout: Duration,
    eviction_grace: Duration,
    max_header_bytes: usize,
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    limits: Limits,
    mut stop: oneshot::Receiver<()>,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // A head that fills the buffer is answered 431; the buffer also bounds what a
        // connection holds of pipelined requests and of an answer being written.
        .max_buf_size(limits.max_header_bytes);
    // Connections age into being closable: look again this often while full.
    let recheck =
        (limits.eviction_grace / 4).clamp(Duration::from_millis(10), Duration::from_millis(100));
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(_) => {
                // Out of file descriptors or a connection reset before accept: wait a little
                // rather than spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // Every slot taken: close one that qualifies, or wait for one to.
        let room = state.table.make_room(
            limits.max_connections,
            limits.eviction_grace,
            recheck,
            || {
                state.counters.evicted.fetch_add(1, Ordering::Relaxed);
            },
        );
        tokio::select! {
            _ = &mut stop => return,
            () = room => {}
        }
        let slot = state.table.admit();
        tokio::spawn(serve(
            stream,
            slot,
            state.clone(),
            http.clone(),
            limits.write_timeout,
        ));
    }
}

/// Serves one connection until it ends or is chosen to make room.
async fn serve(
    stream: TcpStream,
    slot: Slot,
    state: Arc<State>,
    http: http1::Builder,
    write_timeout: Duration,
) {
    let conn = slot.conn().clone();
    let st = state.clone();
    let io = Watched::new(stream, conn.clone(), write_timeout, move || {
        st.counters.write_timeouts.fetch_add(1, Ordering::Relaxed);
    });
    let service = {
        let conn = conn.clone();
        let state = state.clone();
        service_fn(move |req| {
            let state = state.clone();
            let conn = conn.clone();
            Box::pin(async move { Ok::<_, Infallible>(answer(&state, &conn, req).await) })
        })
    };
    let work = async {
        let mut connection = http.serve_connection(TokioIo::new(io), service);
        let ended = std::future::poll_fn(|cx| connection.poll_without_shutdown(cx)).await;
        // hyper answered a bad head (400, 431) before failing: that answer is out too.
        let answered = match &ended {
            Ok(()) => true,
            Err(e) if e.is_timeout() => {
                state
                    .counters
                    .header_timeouts
                    .fetch_add(1, Ordering::Relaxed);
                false
            }
            Err(e) if e.is_parse_too_large() => {
                state
                    .counters
                    .heads_too_large
                    .fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e) => e.is_parse(),
        };
        if answered {
            conn.closing();
            linger(connection.into_parts().io.into_inner()).await;
        }
    };
    tokio::select! {
        () = work => {}
        () = conn.evicted() => {}
    }
    drop(slot);
}

/// Answers one request: the endpoint's checks, then its route. Any 4xx, and the answer to a
/// request pipelined too far ahead, closes the connection.
async fn answer(state: &Arc<State>, conn: &Arc<Conn>, req: Request<Incoming>) -> Response<Body> {
    let ahead = conn.request_started();
    let mut resp = match crate::routes::refusal(state, &req) {
        Some(refused) => refused,
        None => {
            conn.admitted();
            crate::routes::serve(state, req).await
        }
    };
    let refused = resp.status().is_client_error();
    let too_far_ahead = ahead >= state.max_pipelined_requests;
    if refused || too_far_ahead {
        if too_far_ahead && !refused {
            state
                .counters
                .pipelining_closes
                .fetch_add(1, Ordering::Relaxed);
        }
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    let c = conn.clone();
    resp.body_mut()
        .on_done(OnDrop::new(move || c.request_ended()));
    resp
}

/// After a connection's last answer: ends the write side, then reads and drops what the
/// client still sends for a moment (at most [`LINGER`] and [`LINGER_BYTES`]), so that closing
/// does not reset the connection while that answer is still on its way to the client.
async fn linger(mut io: Watched<TcpStream>) {
    if io.shutdown().await.is_err() {
        return;
    }
    let mut buf = [0u8; 8 << 10];
    let mut left = LINGER_BYTES;
    let drain = async {
        while left > 0 {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_127_8_and_v6_one_including_mapped() {
        for ip in ["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "0.0.0.0",
            "::",
            "10.0.0.1",
            "::ffff:10.0.0.1",
            "192.168.1.1",
        ] {
            assert!(!is_loopback(ip.parse().unwrap()), "{ip}");
        }
    }
}
