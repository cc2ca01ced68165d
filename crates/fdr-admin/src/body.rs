//! Response bodies: whole (text, JSON, metrics) or streamed from a bounded channel (dumps,
//! captures), with a way to end a stream with an error and to learn that the client left.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::sync::mpsc;

/// How a streamed body ended, as its producer saw it.
#[derive(Debug, Default)]
pub(crate) struct StreamStatus {
    failed: OnceLock<String>,
}

impl StreamStatus {
    /// Marks the stream failed: once the channel is drained, the body ends with this error,
    /// so the client sees a cut response instead of a complete-looking one.
    pub(crate) fn fail(&self, why: impl Into<String>) {
        let _ = self.failed.set(why.into());
    }

    /// Why the stream failed, if it did.
    pub(crate) fn failure(&self) -> Option<&str> {
        self.failed.get().map(String::as_str)
    }
}

/// Runs a closure when dropped (the response body: the client is done or gone).
pub(crate) struct OnDrop(Option<Box<dyn FnOnce() + Send>>);

impl OnDrop {
    pub(crate) fn new(f: impl FnOnce() + Send + 'static) -> OnDrop {
        OnDrop(Some(Box::new(f)))
    }
}

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// A response body.
pub(crate) struct Body {
    kind: Kind,
    /// Runs when hyper is done with the body (sent, or the connection is gone).
    _done: Option<OnDrop>,
}

enum Kind {
    Full(Option<Bytes>),
    Stream {
        rx: mpsc::Receiver<Bytes>,
        status: Arc<StreamStatus>,
        done: bool,
        /// The exact length, when known (it becomes `Content-Length`).
        length: Option<u64>,
        _on_drop: Option<OnDrop>,
    },
}

impl Body {
    /// A whole body.
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
        let b = bytes.into();
        Body {
            kind: Kind::Full((!b.is_empty()).then_some(b)),
            _done: None,
        }
    }

    /// A body streamed from `rx`; it ends when every sender is gone, with an error if
    /// `status` says the stream failed. `on_drop` runs when hyper drops the body.
    pub(crate) fn stream(
        rx: mpsc::Receiver<Bytes>,
        status: Arc<StreamStatus>,
        on_drop: Option<OnDrop>,
    ) -> Body {
        Body {
            kind: Kind::Stream {
                rx,
                status,
                done: false,
                length: None,
                _on_drop: on_drop,
            },
            _done: None,
        }
    }

    /// A streamed body of exactly `length` bytes: a stream that ends short of it is cut.
    pub(crate) fn with_length(mut self, length: u64) -> Body {
        if let Kind::Stream { length: l, .. } = &mut self.kind {
            *l = Some(length);
        }
        self
    }

    /// Runs `f` when hyper is done with the body.
    pub(crate) fn on_done(&mut self, f: OnDrop) {
        self._done = Some(f);
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match &mut self.get_mut().kind {
            Kind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Stream {
                rx, status, done, ..
            } => {
                if *done {
                    return Poll::Ready(None);
                }
                match rx.poll_recv(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Some(b)) => Poll::Ready(Some(Ok(Frame::data(b)))),
                    Poll::Ready(None) => {
                        *done = true;
                        Poll::Ready(
                            status
                                .failure()
                                .map(|why| Err(io::Error::other(why.to_owned()))),
                        )
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Stream { done, .. } => *done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream {
                length: Some(n), ..
            } => SizeHint::with_exact(*n),
            Kind::Stream { .. } => SizeHint::default(),
        }
    }
}
