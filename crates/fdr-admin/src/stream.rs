//! Blocking producers (a flight-recorder snapshot, an incident file) streamed into a
//! response: the producer runs on a blocking thread and writes into a [`BlockingSink`],
//! which hands frames to the body through a bounded channel and gives up once the client has
//! taken longer than the transfer timeout.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::body::StreamStatus;

/// Bytes gathered before a frame is handed to the body.
const FRAME_BYTES: usize = 64 << 10;
/// Frames waiting for the client, at most (with [`FRAME_BYTES`]: about 1 MiB).
const QUEUE_FRAMES: usize = 16;

/// A request the endpoint does not serve: the status, a `Retry-After` in seconds, and a
/// one-line reason.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) retry_after_secs: Option<u64>,
    pub(crate) message: String,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            retry_after_secs: None,
            message: message.into(),
        }
    }

    /// `429 Too Many Requests` with `Retry-After`.
    pub(crate) fn busy(retry_after_secs: u64, message: impl Into<String>) -> Refusal {
        Refusal {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after_secs: Some(retry_after_secs.max(1)),
            message: message.into(),
        }
    }

    pub(crate) fn internal(message: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

/// A stream whose producer has started: the body's side.
pub(crate) struct Streamed {
    pub(crate) rx: mpsc::Receiver<Bytes>,
    pub(crate) status: Arc<StreamStatus>,
}

/// The producer's side: a `Write` that sends frames to the response body.
pub(crate) struct BlockingSink {
    tx: mpsc::Sender<Bytes>,
    handle: Handle,
    deadline: Instant,
    timeout: Duration,
    buf: Vec<u8>,
    status: Arc<StreamStatus>,
    started: Option<oneshot::Sender<Result<(), Refusal>>>,
}

impl BlockingSink {
    /// Tells the handler that the response starts (status 200).
    fn start(&mut self) {
        if let Some(tx) = self.started.take() {
            let _ = tx.send(Ok(()));
        }
    }

    fn send_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.start();
        let frame = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(FRAME_BYTES),
        ));
        let sent = self
            .handle
            .block_on(tokio::time::timeout_at(self.deadline, self.tx.send(frame)));
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the client went away",
            )),
            Err(_) => {
                let why = format!(
                    "the client did not read the response within {} s; it was cut short",
                    self.timeout.as_secs_f64()
                );
                self.status.fail(why.clone());
                Err(io::Error::new(io::ErrorKind::TimedOut, why))
            }
        }
    }
}

impl Write for BlockingSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= FRAME_BYTES {
            self.send_buf()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buf()
    }
}

/// Runs `job` on a blocking thread, writing into a [`BlockingSink`]. Returns once the job
/// has sent its first bytes (or finished): `Ok` with the body's side, or the job's
/// [`Refusal`] if it failed before sending anything. A failure after that cuts the body.
pub(crate) async fn run_blocking<F>(timeout: Duration, job: F) -> Result<Streamed, Refusal>
where
    F: FnOnce(&mut BlockingSink) -> Result<(), Refusal> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(QUEUE_FRAMES);
    let (started_tx, started_rx) = oneshot::channel();
    let status = Arc::new(StreamStatus::default());
    let mut sink = BlockingSink {
        tx,
        handle: Handle::current(),
        deadline: Instant::now() + timeout,
        timeout,
        buf: Vec::with_capacity(FRAME_BYTES),
        status: status.clone(),
        started: Some(started_tx),
    };
    let join = tokio::task::spawn_blocking(move || {
        let result = job(&mut sink).and_then(|()| {
            sink.flush()
                .map_err(|e| Refusal::internal(format!("writing the response failed: {e}")))
        });
        match result {
            // An empty body still starts.
            Ok(()) => sink.start(),
            Err(refusal) => match sink.started.take() {
                Some(tx) => {
                    let _ = tx.send(Err(refusal));
                }
                None => sink.status.fail(refusal.message),
            },
        }
    });
    match started_rx.await {
        Ok(Ok(())) => Ok(Streamed { rx, status }),
        Ok(Err(refusal)) => Err(refusal),
        Err(_) => Err(Refusal::internal(match join.await {
            Err(e) if e.is_panic() => "the request's work panicked",
            _ => "the request's work ended without an answer",
        })),
    }
}
