//! Owned-buffer I/O helpers over monoio's rent traits, shared by the server and the upstream
//! client. Buffers are moved into the kernel (io_uring) and handed back; these helpers keep the
//! "append to a Vec" and "write all of it" patterns in one place.

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use std::io;

/// Reads once, appending to `buf` (growing it so at least `min_spare` bytes are free).
/// Returns the bytes read (0 at end of stream) and the buffer.
pub(crate) async fn read_append<S: AsyncReadRent>(
    stream: &mut S,
    mut buf: Vec<u8>,
    min_spare: usize,
) -> (io::Result<usize>, Vec<u8>) {
    if buf.capacity() - buf.len() < min_spare {
        buf.reserve(min_spare);
    }
    let len = buf.len();
    let cap = buf.capacity();
    let (res, slice) = stream.read(buf.slice_mut(len..cap)).await;
    (res, slice.into_inner())
}

/// Writes all of `buf`; returns it for reuse.
pub(crate) async fn write_all<S: AsyncWriteRent>(
    stream: &mut S,
    buf: Vec<u8>,
) -> (io::Result<()>, Vec<u8>) {
    let (res, buf) = stream.write_all(buf).await;
    (res.map(|_| ()), buf)
}

/// As [`write_all`], giving up after `limit` (a client that stops reading must not hold a
/// stream, its lane slot or its provider connection for ever): a timed-out write is an error.
pub(crate) async fn write_all_within<S: AsyncWriteRent>(
    stream: &mut S,
    limit: std::time::Duration,
    buf: Vec<u8>,
) -> (io::Result<()>, Vec<u8>) {
    match monoio::time::timeout(limit, write_all(stream, buf)).await {
        Ok(r) => r,
        Err(_) => (
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {} ms", limit.as_millis()),
            )),
            Vec::new(),
        ),
    }
}

/// A shard's free list of I/O buffers, so a request does not allocate (and free) its 16 KiB
/// read buffer and its output buffers every time. Single-threaded by construction (per shard).
pub(crate) struct BufPool {
    free: std::cell::RefCell<Vec<Vec<u8>>>,
    capacity: usize,
    keep: usize,
}

impl BufPool {
    /// A pool of buffers of at least `capacity` bytes, keeping at most `keep` free ones.
    pub(crate) fn new(capacity: usize, keep: usize) -> Self {
        Self {
            free: std::cell::RefCell::new(Vec::new()),
            capacity,
            keep,
        }
    }

    /// An empty buffer with at least the pool's capacity.
    pub(crate) fn take(&self) -> Vec<u8> {
        self.free
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.capacity))
    }

    /// Returns a buffer. Buffers that grew far past the pool's size are dropped, so one large
    /// body does not pin its memory for good.
    pub(crate) fn give(&self, mut buf: Vec<u8>) {
        let cap = buf.capacity();
        let mut free = self.free.borrow_mut();
        if cap >= self.capacity && cap <= self.capacity * 4 && free.len() < self.keep {
            buf.clear();
            free.push(buf);
        }
    }
}
