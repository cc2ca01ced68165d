//! The byte sources a [`Decoder`](super::Decoder) reads batches from: a borrowed slice,
//! a `Bytes` buffer, or any reader through one reused buffer.

use std::io::{self, Read};

use bytes::Bytes;

/// A byte source the decoder reads batches from.
pub trait Input {
    /// Returns up to `n` next bytes (fewer only at the end of the input) and consumes them.
    fn take(&mut self, n: usize) -> io::Result<&[u8]>;
    /// Whether any input remains (may read ahead).
    fn at_end(&mut self) -> io::Result<bool>;
    /// Bytes remaining, if known without reading.
    fn remaining_hint(&self) -> Option<u64>;
    /// Bytes remaining: [`Input::remaining_hint`] if known, else counted by reading and
    /// discarding at most `max` bytes (so the count is a lower bound when it reaches `max`).
    fn count_remaining(&mut self, max: u64) -> io::Result<u64> {
        if let Some(n) = self.remaining_hint() {
            return Ok(n);
        }
        let mut count = 0u64;
        while count < max {
            let step = (max - count).min(4096) as usize;
            let got = self.take(step)?.len();
            count += got as u64;
            if got < step {
                break;
            }
        }
        Ok(count)
    }
}

/// How many bytes after the end marker a reader input counts before it stops reading.
pub const MAX_TRAILING_COUNT_BYTES: u64 = 64 * 1024;

/// A borrowed slice as input.
#[derive(Debug, Clone)]
pub struct SliceInput<'a> {
    pub(super) data: &'a [u8],
    pub(super) pos: usize,
}

impl Input for SliceInput<'_> {
    fn take(&mut self, n: usize) -> io::Result<&[u8]> {
        let end = self.pos.saturating_add(n).min(self.data.len());
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn at_end(&mut self) -> io::Result<bool> {
        Ok(self.pos >= self.data.len())
    }
    fn remaining_hint(&self) -> Option<u64> {
        Some((self.data.len() - self.pos) as u64)
    }
}

/// A `Bytes` buffer as input.
#[derive(Debug, Clone)]
pub struct BytesInput {
    pub(super) data: Bytes,
    pub(super) pos: usize,
}

impl Input for BytesInput {
    fn take(&mut self, n: usize) -> io::Result<&[u8]> {
        let end = self.pos.saturating_add(n).min(self.data.len());
        let start = self.pos;
        self.pos = end;
        Ok(&self.data[start..end])
    }
    fn at_end(&mut self) -> io::Result<bool> {
        Ok(self.pos >= self.data.len())
    }
    fn remaining_hint(&self) -> Option<u64> {
        Some((self.data.len() - self.pos) as u64)
    }
}

/// Any reader as input; one batch at a time is held in a reused buffer.
#[derive(Debug)]
pub struct ReadInput<R> {
    pub(super) inner: R,
    /// Zero-initialised scratch, reused across batches; its length only grows, and only
    /// as bytes actually arrive (see [`ReadInput::take`]).
    pub(super) buf: Vec<u8>,
    /// Bytes of `buf` the current `take` filled.
    pub(super) filled: usize,
    pub(super) peeked: Option<u8>,
}

/// The first step of a reader's buffer, before it grows by doubling.
const READ_FIRST_STEP_BYTES: usize = 4096;

impl<R: Read> Input for ReadInput<R> {
    fn take(&mut self, n: usize) -> io::Result<&[u8]> {
        self.filled = 0;
        if n > 0
            && let Some(b) = self.peeked.take()
        {
            if self.buf.is_empty() {
                self.buf.push(0);
            }
            self.buf[0] = b;
            self.filled = 1;
        }
        // The buffer doubles as data arrives and never grows past `n`: a lying length costs
        // at most twice the bytes the reader actually delivered (or the first step), and a
        // whole batch at most its own size.
        while self.filled < n {
            if self.filled == self.buf.len() {
                let len = (self.buf.len() * 2).max(READ_FIRST_STEP_BYTES).min(n);
                self.buf.reserve_exact(len - self.buf.len());
                self.buf.resize(len, 0);
            }
            let end = self.buf.len().min(n);
            match self.inner.read(&mut self.buf[self.filled..end]) {
                Ok(0) => break,
                Ok(k) => self.filled += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(&self.buf[..self.filled])
    }
    fn at_end(&mut self) -> io::Result<bool> {
        if self.peeked.is_some() {
            return Ok(false);
        }
        let mut b = [0u8; 1];
        loop {
            match self.inner.read(&mut b) {
                Ok(0) => return Ok(true),
                Ok(_) => {
                    self.peeked = Some(b[0]);
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
    fn remaining_hint(&self) -> Option<u64> {
        None
    }
}
