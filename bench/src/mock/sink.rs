//! The mock's writing side for one response: whole writes, or a slow drip of a few bytes per
//! write with a pause between (`x-mock-drip-ms`), head included; holding a connection open
//! without answering; closing it with a TCP reset.
//!
//! ```text
//!   handler --bytes--> Sink::write --drip? chunks of N bytes, sleep between--> socket
//! ```

use super::steer::Drip;
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use std::time::Duration;

/// Where one response goes.
pub(crate) struct Sink<'a> {
    stream: &'a mut TcpStream,
    drip: Option<Drip>,
    /// Whether nothing was written yet (a drip pauses between writes, not before the first).
    first: bool,
}

impl<'a> Sink<'a> {
    pub(crate) fn new(stream: &'a mut TcpStream, drip: Option<Drip>) -> Sink<'a> {
        Sink {
            stream,
            drip,
            first: true,
        }
    }

    /// Writes bytes (dripped if asked); returns whether the connection is still good.
    pub(crate) async fn write(&mut self, bytes: Vec<u8>) -> bool {
        let Some(drip) = self.drip else {
            self.first = false;
            return self.stream.write_all(bytes).await.0.is_ok();
        };
        for chunk in bytes.chunks(drip.bytes.max(1)) {
            if !self.first && !drip.gap.is_zero() {
                monoio::time::sleep(drip.gap).await;
            }
            self.first = false;
            if self.stream.write_all(chunk.to_vec()).await.0.is_err() {
                return false;
            }
        }
        true
    }

    /// Holds the connection without answering until the peer closes it.
    pub(crate) async fn hang(&mut self) -> bool {
        use monoio::io::AsyncReadRent;
        loop {
            let (res, _) = self.stream.read(vec![0u8; 1024]).await;
            if !matches!(res, Ok(n) if n > 0) {
                return false;
            }
        }
    }

    /// Makes the socket's close a TCP reset (SO_LINGER 0: closing sends a RST, not a FIN).
    #[allow(unsafe_code)]
    pub(crate) fn reset_on_close(&self) -> std::io::Result<()> {
        use std::os::fd::{AsRawFd, BorrowedFd};
        // SAFETY: the fd belongs to `self.stream`, which is borrowed for longer than this
        // BorrowedFd lives (it is dropped at the end of this function).
        let fd = unsafe { BorrowedFd::borrow_raw(self.stream.as_raw_fd()) };
        socket2::SockRef::from(&fd).set_linger(Some(Duration::ZERO))
    }
}
