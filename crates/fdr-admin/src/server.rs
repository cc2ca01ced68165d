//! The server: its own thread and single-threaded tokio runtime, a bounded accept loop, and
//! the handle that stops it.

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::thread::JoinHandle;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Semaphore, oneshot};

use crate::auth::Auth;
use crate::{AdminBuilder, Error, MAX_BLOCKING_THREADS, MIN_CAPTURE_BYTES};

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The listen backlog: connections the kernel queues while the accept loop waits.
const BACKLOG: u32 = 1024;
/// How long open connections get to finish when the endpoint shuts down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// Incident listings and downloads served at once.
const STORE_PERMITS: usize = 2;

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
}

/// Everything a request handler reads.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) auth: Auth,
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
        return Err(Error::Config(format!(
            "max_capture_bytes {} is below the minimum of {MIN_CAPTURE_BYTES}",
            b.max_capture_bytes
        )));
    }
    if b.max_connections == 0 {
        return Err(Error::Config("max_connections must be at least 1".into()));
    }
    if b.transfer_timeout.is_zero() {
        return Err(Error::Config("transfer_timeout must be above zero".into()));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .thread_name("fdr-admin-blocking")
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
    let max_connections = b.max_connections;
    let state = Arc::new(State {
        auth,
        #[cfg(feature = "sentinel")]
        sentinel: b.sentinel,
        registries: b.registries,
        capture_cooldown: b.capture_cooldown,
        max_capture_bytes: b.max_capture_bytes,
        refuse_when_degraded: b.refuse_when_degraded,
        transfer_timeout: b.transfer_timeout,
        flight_busy: AtomicBool::new(false),
        store_permits: Arc::new(Semaphore::new(STORE_PERMITS)),
        metrics_permit: Semaphore::new(1),
        counters: Counters::default(),
    });
    let (stop_tx, stop_rx) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("fdr-admin".into())
        .spawn(move || {
            runtime.block_on(accept_loop(listener, state, max_connections, stop_rx));
            runtime.shutdown_timeout(SHUTDOWN_GRACE);
        })
        .map_err(Error::Start)?;
    Ok(AdminHandle {
        addr,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    max_connections: usize,
    mut stop: oneshot::Receiver<()>,
) {
    let limit = Arc::new(Semaphore::new(max_connections));
    loop {
        let permit = tokio::select! {
            _ = &mut stop => return,
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
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
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(crate::routes::handle(&state, req).await) }
            });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(permit);
        });
    }
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
