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
