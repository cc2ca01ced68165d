//! Connections: the table of open connections and what each is doing, the choice of the one
//! to close when every slot is taken and another client connects, and the socket wrapper
//! that watches a connection's progress.
//!
//! The endpoint holds at most `max_connections` sockets, so its memory is bounded whatever
//! clients do. When they are all taken, the accept loop still accepts the next connection
//! and closes one to make room, in this order (each only once it has been so for the
//! eviction grace): a connection lingering after its last answer; one that has not made an
//! admitted request (no head yet, an endless head, no credentials); one whose writes are
//! stalled (the client does not read); one idle between requests. A connection serving a
//! request is never closed for another, so an operator's download survives any crowd, and
//! an operator's new connection gets its request read before a crowd of newer ones can
//! push it out. If no connection qualifies, the new one waits until one does or a slot
//! frees.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// Milliseconds since the table's start, plus one (zero means "never").
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock(Instant);

impl Clock {
    pub(crate) fn now_ms(self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }
}

/// What one connection is doing, shared by its task and the accept loop.
#[derive(Debug)]
pub(crate) struct Conn {
    clock: Clock,
    /// When its task first read from it (0: not yet).
    first_read_ms: AtomicU64,
    /// Requests admitted (credentials, or a loopback `Host` without them).
    admitted: AtomicU64,
    /// A request is being served (until hyper is done with its response body).
    in_request: AtomicBool,
    /// The last time bytes moved, or a request ended.
    last_active_ms: AtomicU64,
    /// Since when a write waits for the client to read (0: not stalled).
    stalled_since_ms: AtomicU64,
    /// Requests served since the connection last had to wait for the client to send more:
    /// how far ahead of its answers a pipelining client is.
    back_to_back: AtomicU32,
    /// Its last answer is sent; it lingers to let the client read it.
    closing: AtomicBool,
    /// Chosen to be closed.
    leaving: AtomicBool,
    /// Wakes its task to close it.
    evict: Notify,
}

impl Conn {
    fn new(clock: Clock) -> Conn {
        Conn {
            clock,
            first_read_ms: AtomicU64::new(0),
            admitted: AtomicU64::new(0),
            in_request: AtomicBool::new(false),
            last_active_ms: AtomicU64::new(clock.now_ms()),
            stalled_since_ms: AtomicU64::new(0),
            back_to_back: AtomicU32::new(0),
            closing: AtomicBool::new(false),
            leaving: AtomicBool::new(false),
            evict: Notify::new(),
        }
    }

    fn touch(&self) {
        self.last_active_ms
            .store(self.clock.now_ms(), Ordering::Relaxed);
    }

    /// A request starts; returns how many requests (this one included) the connection has
    /// sent without waiting for an answer.
    pub(crate) fn request_started(&self) -> u32 {
        self.in_request.store(true, Ordering::Relaxed);
        self.touch();
        self.back_to_back.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The request passed the endpoint's checks.
    pub(crate) fn admitted(&self) {
        self.admitted.fetch_add(1, Ordering::Relaxed);
    }

    /// Hyper is done with the request's response body.
    pub(crate) fn request_ended(&self) {
        self.in_request.store(false, Ordering::Relaxed);
        self.touch();
    }

    /// The connection's last answer is out; it lingers.
    pub(crate) fn closing(&self) {
        self.closing.store(true, Ordering::Relaxed);
    }

    /// Resolves when the accept loop chose this connection to be closed.
    pub(crate) async fn evicted(&self) {
        self.evict.notified().await;
    }

    fn seen(&self) -> Seen {
        Seen {
            first_read_ms: self.first_read_ms.load(Ordering::Relaxed),
            admitted: self.admitted.load(Ordering::Relaxed),
            in_request: self.in_request.load(Ordering::Relaxed),
            last_active_ms: self.last_active_ms.load(Ordering::Relaxed),
            stalled_since_ms: self.stalled_since_ms.load(Ordering::Relaxed),
            closing: self.closing.load(Ordering::Relaxed),
            leaving: self.leaving.load(Ordering::Relaxed),
        }
    }
}

/// A connection's state at one moment, as the choice of whom to close sees it.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    first_read_ms: u64,
    admitted: u64,
    in_request: bool,
    last_active_ms: u64,
    stalled_since_ms: u64,
    closing: bool,
    leaving: bool,
}

/// How readily a connection may be closed to make room: lower first, then the older of
/// the two times; `None` when it may not be.
fn rank(s: &Seen, now_ms: u64, grace_ms: u64) -> Option<(u8, u64)> {
    let aged = |since: u64| since != 0 && now_ms.saturating_sub(since) >= grace_ms;
    if s.leaving {
        None
    } else if s.closing {
        Some((0, s.last_active_ms))
    } else if s.admitted == 0 && aged(s.first_read_ms) {
        Some((1, s.first_read_ms))
    } else if aged(s.stalled_since_ms) {
        Some((2, s.stalled_since_ms))
    } else if s.admitted > 0 && !s.in_request && aged(s.last_active_ms) {
        Some((3, s.last_active_ms))
    } else {
        None
    }
}

/// The open connections.
#[derive(Debug)]
pub(crate) struct Table {
    clock: Clock,
    conns: Mutex<Vec<Arc<Conn>>>,
    /// Notified when a connection leaves the table.
    freed: Notify,
}

impl Table {
    pub(crate) fn new() -> Table {
        Table {
            clock: Clock(Instant::now()),
            conns: Mutex::new(Vec::new()),
            freed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connections open now.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Adds a connection; it leaves the table when the returned slot is dropped.
    pub(crate) fn admit(self: &Arc<Self>) -> Slot {
        let conn = Arc::new(Conn::new(self.clock));
        self.lock().push(conn.clone());
        Slot {
            table: self.clone(),
            conn,
        }
    }

    /// Chooses a connection to close to make room and tells it to go; `false` if none may
    /// go now or one is already going.
    fn evict_one(&self, grace: Duration) -> bool {
        let now = self.clock.now_ms();
        let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
        let conns = self.lock();
        let seen: Vec<Seen> = conns.iter().map(|c| c.seen()).collect();
        if seen.iter().any(|s| s.leaving) {
            return false;
        }
        let Some(i) = victim(&seen, now, grace_ms) else {
            return false;
        };
        conns[i].leaving.store(true, Ordering::Relaxed);
        conns[i].evict.notify_one();
        true
    }

    /// Waits until the table has room for one more connection than `max - 1`, closing
    /// connections as [`rank`] allows; `evicted` is called for each one closed. Checks again
    /// every `recheck` (connections age into eligibility).
    pub(crate) async fn make_room(
        &self,
        max: usize,
        grace: Duration,
        recheck: Duration,
        mut evicted: impl FnMut(),
    ) {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.len() < max {
                return;
            }
            if self.evict_one(grace) {
                evicted();
            }
            tokio::select! {
                () = &mut freed => {}
                () = tokio::time::sleep(recheck) => {}
            }
        }
    }
}

/// The index of the connection to close first, if any may be. While a connection without
/// an admitted request is open, no admitted one is closed: that one qualifies within the
/// grace, so an operator's idle or slow connection never goes for a crowd of newer ones.
fn victim(seen: &[Seen], now_ms: u64, grace_ms: u64) -> Option<usize> {
    let unadmitted_open = seen
        .iter()
        .any(|s| s.admitted == 0 && !s.leaving && !s.closing);
    seen.iter()
        .enumerate()
        .filter_map(|(i, s)| rank(s, now_ms, grace_ms).map(|r| (r, i)))
        .filter(|((rank, _), _)| *rank < 2 || !unadmitted_open)
        .min()
        .map(|(_, i)| i)
}

/// A connection's place in the table.
#[derive(Debug)]
pub(crate) struct Slot {
    table: Arc<Table>,
    conn: Arc<Conn>,
}

impl Slot {
    pub(crate) fn conn(&self) -> &Arc<Conn> {
        &self.conn
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut conns = self.table.lock();
        if let Some(i) = conns.iter().position(|c| Arc::ptr_eq(c, &self.conn)) {
            conns.swap_remove(i);
        }
        drop(conns);
        self.table.freed.notify_one();
    }
}

/// A socket that records its connection's progress and gives up on writes the client does
/// not take within the write timeout.
pub(crate) struct Watched<S> {
    inner: S,
    conn: Arc<Conn>,
    write_timeout: Duration,
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Called once when a write times out.
    on_write_timeout: Option<Box<dyn FnOnce() + Send>>,
}

impl<S> Watched<S> {
    pub(crate) fn new(
        inner: S,
        conn: Arc<Conn>,
        write_timeout: Duration,
        on_write_timeout: impl FnOnce() + Send + 'static,
    ) -> Watched<S> {
        Watched {
            inner,
            conn,
            write_timeout,
            stall: None,
            on_write_timeout: Some(Box::new(on_write_timeout)),
        }
    }

    fn progress(&mut self) {
        if self.stall.take().is_some() {
            self.conn.stalled_since_ms.store(0, Ordering::Relaxed);
        }
        self.conn.touch();
    }

    /// A write is pending: starts the stall clock, or fails once it ran out.
    fn stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let (conn, timeout) = (&self.conn, self.write_timeout);
        let sleep = self.stall.get_or_insert_with(|| {
            conn.stalled_since_ms
                .store(conn.clock.now_ms(), Ordering::Relaxed);
            Box::pin(tokio::time::sleep(timeout))
        });
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if let Some(f) = self.on_write_timeout.take() {
            f();
        }
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the client took no bytes for {} s",
                self.write_timeout.as_secs_f64()
            ),
        )))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let c = &this.conn;
        if c.first_read_ms.load(Ordering::Relaxed) == 0 {
            c.first_read_ms.store(c.clock.now_ms(), Ordering::Relaxed);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    c.touch();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                // Nothing more from the client for now: it is not ahead of its answers.
                c.back_to_back.store(0, Ordering::Relaxed);
                Poll::Pending
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.progress();
                Poll::Ready(Ok(n))
            }
            Poll::Pending => this.stalled(cx),
            other => other,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                this.progress();
                Poll::Ready(Ok(n))
            }
            Poll::Pending => this.stalled(cx),
            other => other,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.stalled(cx),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: u64 = 1000;

    fn fresh(first_read_ms: u64) -> Seen {
        Seen {
            first_read_ms,
            last_active_ms: first_read_ms,
            ..Seen::default()
        }
    }

    #[test]
    fn nothing_young_or_busy_is_closed() {
        let now = 10_000;
        let never_read = Seen::default();
        let young = fresh(now - 10);
        let serving = Seen {
            admitted: 1,
            in_request: true,
            ..fresh(1)
        };
        let idle_young = Seen {
            admitted: 3,
            last_active_ms: now - 500,
            ..fresh(1)
        };
        let leaving = Seen {
            leaving: true,
            ..fresh(1)
        };
        assert_eq!(
            victim(
                &[never_read, young, serving, idle_young, leaving],
                now,
                GRACE
            ),
            None
        );
    }

    #[test]
    fn lingering_then_unadmitted_then_stalled_then_idle_oldest_first() {
        let now = 100_000;
        let idle = Seen {
            admitted: 2,
            last_active_ms: 10,
            ..fresh(5)
        };
        let stalled = Seen {
            admitted: 1,
            in_request: true,
            stalled_since_ms: 50_000,
            ..fresh(5)
        };
        let silent_old = fresh(20_000);
        let silent_older = fresh(10_000);
        let lingering = Seen {
            admitted: 1,
            closing: true,
            last_active_ms: now - 1,
            ..fresh(5)
        };
        let mut all = vec![idle, stalled, silent_old, silent_older, lingering];
        assert_eq!(victim(&all, now, GRACE), Some(4));
        all.remove(4);
        assert_eq!(victim(&all, now, GRACE), Some(3));
        all.remove(3);
        assert_eq!(victim(&all, now, GRACE), Some(2));
        all.remove(2);
        assert_eq!(victim(&all, now, GRACE), Some(1));
        all.remove(1);
        assert_eq!(victim(&all, now, GRACE), Some(0));
    }

    #[test]
    fn an_idle_operator_waits_out_young_unadmitted_connections() {
        let now = 100_000;
        let idle = Seen {
            admitted: 1,
            last_active_ms: 10,
            ..fresh(5)
        };
        let stalled = Seen {
            admitted: 1,
            in_request: true,
            stalled_since_ms: 10,
            ..fresh(5)
        };
        let young = fresh(now - 10);
        assert_eq!(victim(&[idle, stalled, young], now, GRACE), None);
        assert_eq!(victim(&[idle, stalled, young], now + GRACE, GRACE), Some(2));
        assert_eq!(victim(&[idle, stalled], now, GRACE), Some(1));
    }

    #[test]
    fn an_operator_mid_request_outranks_any_crowd() {
        let now = 100_000;
        let mut all: Vec<Seen> = (0..255).map(|i| fresh(1000 + i)).collect();
        all.push(Seen {
            admitted: 1,
            in_request: true,
            ..fresh(1)
        });
        for _ in 0..255 {
            let v = victim(&all, now, GRACE).unwrap();
            assert!(all[v].admitted == 0);
            all.remove(v);
        }
        assert_eq!(victim(&all, now, GRACE), None);
    }

    #[tokio::test]
    async fn make_room_closes_the_chosen_connection_and_waits_for_it() {
        let table = Arc::new(Table::new());
        let silent = table.admit();
        silent.conn().first_read_ms.store(1, Ordering::Relaxed);
        let busy = table.admit();
        busy.conn().admitted();
        busy.conn().request_started();
        let conn = silent.conn().clone();
        let closer = tokio::spawn(async move {
            conn.evicted().await;
            drop(silent);
        });
        tokio::time::timeout(
            Duration::from_secs(20),
            table.make_room(2, Duration::ZERO, Duration::from_millis(5), || {}),
        )
        .await
        .expect("no room made");
        closer.await.unwrap();
        assert_eq!(table.len(), 1);
        drop(busy);
        assert_eq!(table.len(), 0);
    }
}
