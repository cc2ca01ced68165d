//! fdr's admin endpoint: a dedicated, locked-down HTTP server for the flight recorder,
//! throttled on-demand captures, the sentinel's incidents and Prometheus metrics.
//!
//! The seed's "always-available endpoint, but only on the admin network", made safe to leave
//! on: its own listener (never the service's router), loopback by default, authentication
//! required for anything else, one capture at a time per process with a cooldown, output
//! capped in bytes, and no work on the service's threads.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! fdr_recorder::start(fdr_recorder::Config::default())?;
//! let admin = fdr_admin::Admin::builder()
//!     .bind(([127, 0, 0, 1], 6060))
//!     .bearer_token(std::env::var("FDR_ADMIN_TOKEN")?)
//!     .capture_cooldown(Duration::from_secs(60))
//!     .start()?;
//! println!("fdr admin on http://{}/debug/fdr/", admin.local_addr());
//! // ... the service runs; dropping `admin` (or `admin.shutdown()`) stops the endpoint.
//! # Ok(()) }
//! ```
//!
//! Then, from the host (or through an SSH tunnel):
//!
//! ```text
//! curl -H "Authorization: Bearer $TOKEN" -o now.fdr  http://127.0.0.1:6060/debug/fdr/flight
//! curl -H "Authorization: Bearer $TOKEN" -o next.fdr 'http://127.0.0.1:6060/debug/fdr/trace?seconds=5'
//! fdr diagnose now.fdr
//! ```
//!
//! # Endpoints
//!
//! Every endpoint answers `GET` only (`405` otherwise), unknown paths get `404`, and bad
//! parameters `400` with a one-line reason.
//!
//! - `GET /debug/fdr/`: the list of endpoints (plain text).
//! - `GET /debug/fdr/flight`: the flight recorder's window as an fdr trace
//!   (`application/octet-stream`, with a `Content-Disposition` file name and a
//!   `Content-Length`). The snapshot is first copied into a spool, an unnamed file readable by
//!   the owner only ([`AdminBuilder::spool_dir`]), at the disk's pace, and the recorder's
//!   snapshot is released before the client reads a byte: a slow download never holds it. `429`
//!   with `Retry-After` while another snapshot is being written (by the sentinel or the
//!   service) or another download from this endpoint is being sent.
//! - `GET /debug/fdr/trace?seconds=N`: a streaming capture of the next `N` seconds (default
//!   [`DEFAULT_CAPTURE_SECONDS`], at most [`MAX_CAPTURE_SECONDS`]). One capture at a time in
//!   the process, and a cooldown after each ([`AdminBuilder::capture_cooldown`]): `429` with
//!   `Retry-After` (seconds) meanwhile. The capture ends early when the client disconnects,
//!   when its output reaches [`AdminBuilder::max_capture_bytes`] (the trace then ends with a
//!   well-formed end marker after the last whole batch), or when the client reads too
//!   slowly (the response is then cut short, never buffered without bound).
//! - `GET /debug/fdr/incidents`: the sentinel's incidents, newest first (JSON).
//! - `GET /debug/fdr/incidents/{id}`: one incident's dump.
//! - `GET /debug/pprof/profile?seconds=N` (feature `pprof`): a CPU profile.
//! - `GET /metrics`: Prometheus text exposition: fdr's runtime metrics (histograms in
//!   seconds with `le` buckets, counters), the recorder's and the sentinel's counters, this
//!   endpoint's own, and every registry handed to [`AdminBuilder::registry`].
//!
//! # Threads and costs
//!
//! [`AdminBuilder::start`] runs the server on its own thread (`fdr-admin`) with its own
//! single-threaded tokio runtime, so the service need not use tokio and its runtime never
//! runs admin work. Snapshots, capture stops, incident reads and metric gathering run on that
//! runtime's blocking threads (at most [`MAX_BLOCKING_THREADS`]); the capture itself streams
//! from the recorder's collector thread, which never waits for the network: a client that
//! falls behind by more than a bounded number of batches loses its capture. The time a
//! client may take to read a snapshot or a dump is bounded
//! ([`AdminBuilder::transfer_timeout`]).
//!
//! # Connections
//!
//! What a client can hold is bounded, so hostile or broken clients cannot take the endpoint
//! from its operators:
//!
//! - At most [`AdminBuilder::max_connections`] sockets (default 256), each with buffers of
//!   [`AdminBuilder::max_header_bytes`] (default 16 KiB): memory stays bounded whatever
//!   clients do. A longer request head gets `431`.
//! - A request head must arrive within [`AdminBuilder::header_read_timeout`] (default 10 s,
//!   also the idle time allowed between kept-alive requests); a response the client takes no
//!   bytes of for [`AdminBuilder::write_timeout`] (default 10 s) ends the connection.
//! - Any `4xx` (a `401` above all) carries `Connection: close` and ends the connection: no
//!   credentials, no slot. A client pipelining requests gets
//!   [`AdminBuilder::max_pipelined_requests`] (default 16) answered, the last with
//!   `Connection: close`.
//! - When every slot is taken, a new connection is still accepted, and one is closed to make
//!   room once it has been so for [`AdminBuilder::eviction_grace`] (default 1 s): first a
//!   connection lingering after its last answer, then one that has not made an admitted
//!   request (silent, an endless head, no credentials), then one stalled writing, then one
//!   idle between requests; oldest first. An admitted connection is closed only while no
//!   unadmitted one is open, and one serving a request never. So an operator with
//!   credentials gets in past any crowd of connections without them: the crowd's oldest
//!   make way, and the operator's request is read long before the crowd's newer connections
//!   could push its connection out. Without credentials every loopback client is an
//!   operator: the bounds still end stuck, silent, oversized and pipelining connections, but
//!   local clients that keep every slot busy with valid requests are served in turn.
//! - `/metrics` shows `fdr_admin_connections_open` and
//!   `fdr_admin_connections_closed_total{reason}` (`evicted`, `header_timeout`,
//!   `write_timeout`, `header_too_large`, `pipelining`).
//!
//! # Security
//!
//! The endpoint reveals function names, file paths and what the service was doing: treat
//! it like a debug-symbol dump. It binds `127.0.0.1` by default; binding any address that is
//! not loopback without a bearer token or basic credentials fails with
//! [`Error::Unauthenticated`]. Credentials are compared in constant time; a request without
//! them gets `401` with `WWW-Authenticate`. Without credentials (loopback only), a request
//! whose `Host` is not `localhost`, a loopback address or one of
//! [`AdminBuilder::allowed_hosts`] gets `421`: a web page whose name an attacker rebinds to
//! 127.0.0.1 cannot read the endpoint through a browser (DNS rebinding). There is no TLS:
//! put a TLS-terminating proxy in front of a non-loopback bind.
//!
//! # Feature flags
//!
//! - `sentinel` (off by default; `fdr`'s `sentinel` and `admin` features together turn it
//!   on): `AdminBuilder::sentinel` attaches an `fdr-sentinel` sentinel:
//!   its incidents are listed and served, its counters are in `/metrics`, and
//!   `AdminBuilder::refuse_captures_when_degraded` refuses on-demand captures (`503`)
//!   while it reports the process degraded. Without it those endpoints answer `404`.
//! - `pprof`: `GET /debug/pprof/profile?seconds=N` (default 30, at most 60), a CPU profile of
//!   the whole process in pprof's protobuf format, for `go tool pprof` or `pprof`, taken with
//!   the `pprof` crate (a `SIGPROF` timer at 99 Hz; the process's only `SIGPROF` user while it
//!   runs). One profile at a time; a client that leaves ends it.
#![forbid(unsafe_code)]

mod auth;
mod body;
mod capture;
mod conn;
mod cost;
mod host;
#[cfg(feature = "pprof")]
mod profile;
mod prom;
mod routes;
mod server;
mod spool;
mod stream;
mod tasks;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

pub use server::AdminHandle;

/// The default port: Go's pprof convention.
pub const DEFAULT_PORT: u16 = 6060;
/// A capture's length when the request does not say.
pub const DEFAULT_CAPTURE_SECONDS: u32 = 5;
/// The longest capture a request may ask for: a longer trace of a busy service is unusable.
pub const MAX_CAPTURE_SECONDS: u32 = 30;
/// The default pause between the end of one capture and the start of the next.
pub const DEFAULT_CAPTURE_COOLDOWN: Duration = Duration::from_secs(60);
/// The default cap on one capture's output.
pub const DEFAULT_MAX_CAPTURE_BYTES: u64 = 64 << 20;
/// The smallest allowed cap on a capture's output (room for the file header and a table).
pub const MIN_CAPTURE_BYTES: u64 = 16 << 10;
/// The default bound on open connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// The default time a client has to read a whole snapshot or incident dump.
pub const DEFAULT_TRANSFER_TIMEOUT: Duration = Duration::from_secs(60);
/// The default time a client has to send a request's head, and a kept-alive connection its
/// next one.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The default longest a response waits for the client to take more bytes.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The default time, while every connection slot is taken, after which a connection without
/// an admitted request (or a stalled or idle one) may be closed to make room.
pub const DEFAULT_EVICTION_GRACE: Duration = Duration::from_secs(1);
/// The default cap on a request's head (request line and headers).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 << 10;
/// The smallest allowed cap on a request's head (hyper's smallest connection buffer).
pub const MIN_HEADER_BYTES: usize = 8 << 10;
/// The largest allowed cap on a request's head.
pub const MAX_HEADER_BYTES: usize = 1 << 20;
/// The default number of requests a connection may send ahead of their answers.
pub const DEFAULT_MAX_PIPELINED_REQUESTS: u32 = 16;
/// Blocking threads the endpoint's runtime may use (snapshots, capture stops, incident
/// reads, metrics).
pub const MAX_BLOCKING_THREADS: usize = 8;

/// The admin endpoint; [`Admin::builder`] sets it up.
#[derive(Debug)]
pub struct Admin(());

impl Admin {
    /// A builder with the defaults: `127.0.0.1:6060`, no authentication (loopback only),
    /// a 60 s cooldown between captures, 64 MiB per capture.
    pub fn builder() -> AdminBuilder {
        AdminBuilder::default()
    }
}

/// Sets up the admin endpoint; [`AdminBuilder::start`] starts it.
#[derive(Clone)]
pub struct AdminBuilder {
    pub(crate) addr: SocketAddr,
    pub(crate) bearer: Option<String>,
    pub(crate) basic: Option<(String, String)>,
    #[cfg(feature = "sentinel")]
    pub(crate) sentinel: Option<fdr_sentinel::SentinelHandle>,
    pub(crate) registries: Vec<prometheus::Registry>,
    pub(crate) capture_cooldown: Duration,
    pub(crate) max_capture_bytes: u64,
    pub(crate) refuse_when_degraded: bool,
    pub(crate) max_connections: usize,
    pub(crate) transfer_timeout: Duration,
    pub(crate) header_read_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) eviction_grace: Duration,
    pub(crate) max_header_bytes: usize,
    pub(crate) max_pipelined_requests: u32,
    pub(crate) allowed_hosts: Vec<String>,
    pub(crate) spool_dir: Option<PathBuf>,
}

impl Default for AdminBuilder {
    fn default() -> Self {
        AdminBuilder {
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT),
            bearer: None,
            basic: None,
            #[cfg(feature = "sentinel")]
            sentinel: None,
            registries: Vec::new(),
            capture_cooldown: DEFAULT_CAPTURE_COOLDOWN,
            max_capture_bytes: DEFAULT_MAX_CAPTURE_BYTES,
            refuse_when_degraded: false,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            transfer_timeout: DEFAULT_TRANSFER_TIMEOUT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            eviction_grace: DEFAULT_EVICTION_GRACE,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_pipelined_requests: DEFAULT_MAX_PIPELINED_REQUESTS,
            allowed_hosts: Vec::new(),
            spool_dir: None,
        }
    }
}

impl std::fmt::Debug for AdminBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("AdminBuilder");
        d.field("addr", &self.addr)
            .field("bearer_token", &self.bearer.as_ref().map(|_| "<set>"))
            .field(
                "basic_auth",
                &self.basic.as_ref().map(|(u, _)| format!("{u}:<set>")),
            );
        #[cfg(feature = "sentinel")]
        d.field("sentinel", &self.sentinel.is_some());
        d.field("registries", &self.registries.len())
            .field("capture_cooldown", &self.capture_cooldown)
            .field("max_capture_bytes", &self.max_capture_bytes)
            .field("refuse_captures_when_degraded", &self.refuse_when_degraded)
            .field("max_connections", &self.max_connections)
            .field("transfer_timeout", &self.transfer_timeout)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("eviction_grace", &self.eviction_grace)
            .field("max_header_bytes", &self.max_header_bytes)
            .field("max_pipelined_requests", &self.max_pipelined_requests)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("spool_dir", &self.spool_dir)
            .finish()
    }
}

impl AdminBuilder {
    /// Where to listen (default `127.0.0.1:6060`; port 0 picks a free port, see
    /// [`AdminHandle::local_addr`]). An address that is not loopback needs
    /// authentication.
    pub fn bind(mut self, addr: impl Into<SocketAddr>) -> Self {
        self.addr = addr.into();
        self
    }

    /// Requires `Authorization: Bearer <token>` (compared in constant time). The token must
    /// be non-empty, without spaces or control characters.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer = Some(token.into());
        self
    }

    /// Requires HTTP basic authentication with `user` and `password` (compared in
    /// constant time). With a bearer token too, either is accepted.
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.basic = Some((user.into(), password.into()));
        self
    }

    /// Serves the sentinel's incidents, exports its counters, and lets
    /// [`AdminBuilder::refuse_captures_when_degraded`] see its state. The endpoint keeps a
    /// [`fdr_sentinel::SentinelHandle`], not the sentinel: it does not keep it running.
    #[cfg(feature = "sentinel")]
    pub fn sentinel(mut self, sentinel: &fdr_sentinel::Sentinel) -> Self {
        self.sentinel = Some(sentinel.handle());
        self
    }

    /// Adds a registry whose metrics `/metrics` exports after fdr's (families named
    /// `fdr_*`, and names already exported, are skipped with a comment).
    pub fn registry(mut self, registry: prometheus::Registry) -> Self {
        self.registries.push(registry);
        self
    }

    /// The pause between the end of one on-demand capture and the start of the next
    /// (default 60 s; zero allows back-to-back captures, still one at a time).
    pub fn capture_cooldown(mut self, cooldown: Duration) -> Self {
        self.capture_cooldown = cooldown;
        self
    }

    /// The most bytes one capture may send (default 64 MiB, at least
    /// [`MIN_CAPTURE_BYTES`]); the capture stops when the next batch would pass it.
    pub fn max_capture_bytes(mut self, bytes: u64) -> Self {
        self.max_capture_bytes = bytes;
        self
    }

    /// Refuses on-demand captures (`503`) while the attached sentinel reports the process
    /// degraded (a rule breaching): "never run a trace on the primary while the system is
    /// degraded". Off by default; the flight recorder stays available either way.
    pub fn refuse_captures_when_degraded(mut self, on: bool) -> Self {
        self.refuse_when_degraded = on;
        self
    }

    /// The most connections open at once (default 256), which bounds the endpoint's memory.
    /// When every slot is taken, a new connection is still accepted: the connection that has
    /// gone longest without an admitted request, else the longest-stalled writer, else the
    /// longest-idle kept-alive connection, once past [`AdminBuilder::eviction_grace`], is
    /// closed to make room; a connection serving a request is never closed for another.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// How long a client may take to read a whole flight snapshot or incident dump
    /// (default 60 s); past it the response is cut.
    pub fn transfer_timeout(mut self, timeout: Duration) -> Self {
        self.transfer_timeout = timeout;
        self
    }

    /// How long a client may take to send a request's head, and a kept-alive connection to
    /// start its next one (default 10 s); past it the connection is closed.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// How long a response may wait for the client to take more bytes (default 10 s); a
    /// client that takes none for that long is disconnected.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// While every connection slot is taken: how long a connection may go without an
    /// admitted request (credentials, or a loopback `Host` without them), stall its writes or
    /// sit idle before it may be closed to make room for a new one (default 1 s).
    pub fn eviction_grace(mut self, grace: Duration) -> Self {
        self.eviction_grace = grace;
        self
    }

    /// The cap on a request's head, request line and headers (default 16 KiB, from
    /// [`MIN_HEADER_BYTES`] to [`MAX_HEADER_BYTES`]): a longer head gets `431` and the
    /// connection is closed. It is the size of each connection's read and write buffers, so
    /// it also bounds what a connection holds of pipelined requests.
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes;
        self
    }

    /// How many requests a connection may send ahead of their answers (HTTP/1 pipelining,
    /// default 16, at least 1): the answer to the last carries `Connection: close`, and the
    /// requests behind it are not served.
    pub fn max_pipelined_requests(mut self, n: u32) -> Self {
        self.max_pipelined_requests = n;
        self
    }

    /// Host names (or addresses) besides the loopback ones that an endpoint without
    /// credentials answers to, e.g. the name of an SSH tunnel's or a proxy's target. Without
    /// credentials, a request whose `Host` is not `localhost`, a loopback address or one of
    /// these gets `421` (a web page that rebinds its own name to 127.0.0.1 cannot reach the
    /// endpoint). With credentials, they are the gate and `Host` is not checked. Names are
    /// compared without case and port.
    pub fn allowed_hosts<I, S>(mut self, hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_hosts.extend(hosts.into_iter().map(Into::into));
        self
    }

    /// Where flight snapshots are spooled before they are sent (default: the system's
    /// temporary directory). A spool is an unnamed file (on Linux `O_TMPFILE`, elsewhere a
    /// random name created exclusively and unlinked at once), readable by the owner only,
    /// as large as the flight recorder's window, and gone when the download ends.
    pub fn spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool_dir = Some(dir.into());
        self
    }

    /// Binds the listener and starts serving on the `fdr-admin` thread. Fails if the
    /// address is not loopback and no authentication is set, if the configuration is
    /// unusable, or if the address cannot be bound.
    pub fn start(self) -> Result<AdminHandle, Error> {
        server::start(self)
    }
}

/// The admin endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A non-loopback address without authentication.
    #[error(
        "fdr-admin: refusing to listen on {addr}: it is not a loopback address and no \
         authentication is set; set .bearer_token(..) or .basic_auth(..), or bind 127.0.0.1"
    )]
    Unauthenticated {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The configuration is unusable.
    #[error("fdr-admin: {0}")]
    Config(#[source] ConfigError),
    /// The address could not be bound.
    #[error("fdr-admin: could not listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The runtime or the thread could not be started.
    #[error("fdr-admin: could not start its runtime or thread: {0}")]
    Start(#[source] std::io::Error),
}

/// Why the builder's configuration was refused; nothing was bound or started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The bearer token is empty or has a character other than printable ASCII (not
    /// echoed: it is a secret).
    #[error("the bearer token must be non-empty printable ASCII without spaces")]
    BearerToken,
    /// The basic-auth user is empty or has `:` or a control character.
    #[error("the basic-auth user must be non-empty, without `:` or control characters")]
    BasicAuthUser,
    /// The basic-auth password is empty or has a control character (not echoed).
    #[error("the basic-auth password must be non-empty, without control characters")]
    BasicAuthPassword,
    /// An `allowed_hosts` entry is not a host name or an IP address.
    #[error(
        "allowed_hosts: {host:?} is not a host name or an IP address (give names without a scheme, port or path)"
    )]
    AllowedHost {
        /// The entry given.
        host: String,
    },
    /// `max_capture_bytes` is below `min` ([`MIN_CAPTURE_BYTES`]).
    #[error("max_capture_bytes {max_capture_bytes} is below the minimum of {min}")]
    MaxCaptureBytes {
        /// The value given.
        max_capture_bytes: u64,
        /// The least accepted.
        min: u64,
    },
    /// `max_connections` is 0.
    #[error("max_connections must be at least 1")]
    ZeroMaxConnections,
    /// A timeout or grace period (`setting`) is zero.
    #[error("{setting} must be above zero")]
    ZeroDuration {
        /// The setting: `transfer_timeout`, `header_read_timeout`, `write_timeout` or
        /// `eviction_grace`.
        setting: &'static str,
    },
    /// `max_header_bytes` is outside `min..=max` ([`MIN_HEADER_BYTES`], [`MAX_HEADER_BYTES`]).
    #[error("max_header_bytes {max_header_bytes} is outside {min}..={max}")]
    MaxHeaderBytes {
        /// The value given.
        max_header_bytes: usize,
        /// The least accepted.
        min: usize,
        /// The most accepted.
        max: usize,
    },
    /// `max_pipelined_requests` is 0.
    #[error("max_pipelined_requests must be at least 1")]
    ZeroMaxPipelinedRequests,
}
