//! Joining a client's upgraded connection (a WebSocket) to the replica's: bytes are copied
//! both ways until both sides have closed. Unlike `tokio::io::copy_bidirectional`, which
//! gives each direction an 8 KiB buffer for the connection's whole life, a direction here
//! holds memory only while the other side cannot take what was read. An idle connection,
//! which is what most dashboard WebSockets are most of the time, holds no buffer at all:
//! reads go into a buffer on the stack of the poll that made them, and are written out in
//! the same poll.

use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most read at once. It lives on the stack only during a poll.
const CHUNK: usize = 16 * 1024;

/// One direction of the copy.
#[derive(Default)]
struct Direction {
    /// What was read but not yet taken by the writer: only while the writer pushes back.
    pending: Vec<u8>,
    written: usize,
    /// Bytes were written since the last flush (TLS streams hold them until flushed).
    need_flush: bool,
    /// The reader has ended; the writer is to be shut down.
    eof: bool,
    finished: bool,
}

impl Direction {
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        writer: &mut W,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        loop {
            while self.written < self.pending.len() {
                let n =
                    ready!(Pin::new(&mut *writer).poll_write(cx, &self.pending[self.written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.written += n;
                self.need_flush = true;
            }
            if !self.pending.is_empty() {
                // Taken in full: give the memory back.
                self.pending = Vec::new();
                self.written = 0;
            }
            if self.eof {
                ready!(Pin::new(&mut *writer).poll_shutdown(cx))?;
                self.finished = true;
                return Poll::Ready(Ok(()));
            }

            let mut stack = [MaybeUninit::<u8>::uninit(); CHUNK];
            let mut buf = ReadBuf::uninit(&mut stack);
            if Pin::new(&mut *reader).poll_read(cx, &mut buf)?.is_pending() {
                if self.need_flush {
                    ready!(Pin::new(&mut *writer).poll_flush(cx))?;
                    self.need_flush = false;
                }
                return Poll::Pending;
            }
            let data = buf.filled();
            if data.is_empty() {
                self.eof = true;
                continue;
            }
            let mut offset = 0;
            while offset < data.len() {
                match Pin::new(&mut *writer).poll_write(cx, &data[offset..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => {
                        offset += n;
                        self.need_flush = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {
                        // The writer pushes back: keep the rest (and read no more) until it
                        // has taken it; its waker is registered.
                        self.pending = data[offset..].to_vec();
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

/// Copies `a` to `b` and `b` to `a` until each has reached its end and the other side was
/// shut down for writing (a half-closed connection keeps flowing the other way). The first
/// error on either side ends both.
pub async fn splice<A, B>(a: &mut A, b: &mut B) -> io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let mut a_to_b = Direction::default();
    let mut b_to_a = Direction::default();
    poll_fn(|cx| {
        if !a_to_b.finished {
            if let Poll::Ready(Err(e)) = a_to_b.poll_copy(cx, a, b) {
                return Poll::Ready(Err(e));
            }
        }
        if !b_to_a.finished {
            if let Poll::Ready(Err(e)) = b_to_a.poll_copy(cx, b, a) {
                return Poll::Ready(Err(e));
            }
        }
        if a_to_b.finished && b_to_a.finished {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A connected pair of loopback TCP sockets.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (connected, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (connected.unwrap(), accepted.unwrap().0)
    }

    #[tokio::test]
    async fn bytes_flow_both_ways_intact_and_each_end_is_passed_on() {
        // client <-> (near, far) spliced <-> server
        let (mut client, mut near) = pair().await;
        let (mut far, mut server) = pair().await;
        let splicer = tokio::spawn(async move { splice(&mut near, &mut far).await });

        // More than the kernel's socket buffers hold, so the writer pushes back.
        let upload: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let download: Vec<u8> = upload.iter().rev().copied().collect();
        let (sent_up, sent_down) = (upload.clone(), download.clone());
        let (mut client_read, mut client_write) = client.split();
        let (mut server_read, mut server_write) = server.split();
        let (got_down, got_up, _, _) = tokio::join!(
            async {
                let mut got = Vec::new();
                client_read.read_to_end(&mut got).await.unwrap();
                got
            },
            async {
                let mut got = Vec::new();
                server_read.read_to_end(&mut got).await.unwrap();
                got
            },
            async {
                client_write.write_all(&sent_up).await.unwrap();
                client_write.shutdown().await.unwrap();
            },
            async {
                server_write.write_all(&sent_down).await.unwrap();
                server_write.shutdown().await.unwrap();
            },
        );
        assert!(
            got_up == upload,
            "the server got the client's bytes in order"
        );
        assert!(
            got_down == download,
            "the client got the server's bytes in order"
        );
        splicer.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_half_closed_side_still_receives() {
        let (mut client, mut near) = pair().await;
        let (mut far, mut server) = pair().await;
        let splicer = tokio::spawn(async move { splice(&mut near, &mut far).await });

        client.write_all(b"ping").await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(
            got, b"ping",
            "the end of the client's data reached the server"
        );
        // The server answers after the client stopped sending, as a WebSocket close does.
        server.write_all(b"pong").await.unwrap();
        server.shutdown().await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"pong");
        splicer.await.unwrap().unwrap();
    }
}
