//! Port-forward over a WebSocket that tunnels SPDY (`SPDY/3.1+portforward.k8s.io`, kubectl
//! 1.31 and later).
//!
//! The client's binary WebSocket messages carry the raw bytes of a SPDY/3.1 connection, so the
//! relay needs no SPDY parsing: it copies bytes between the WebSocket and an upgraded SPDY
//! connection to the runtime's stream server.
//!
//! # Answering the handshake
//!
//! The client offers `Sec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io`. A server does what
//! Kubernetes' tunneling handler does:
//!
//! 1. take the offered subprotocols that start with [`TUNNEL_PREFIX`] and end with `.k8s.io`,
//!    strip the prefix ([`tunneled_spdy_protocols`]) and offer those upstream as
//!    `X-Stream-Protocol-Version` in the `Upgrade: SPDY/3.1` request
//!    ([`crate::spdy::client_upgrade`] with the same path, e.g. the CRI `PortForward` URL);
//! 2. if upstream answers 101, answer the WebSocket with 101 and
//!    `Sec-WebSocket-Protocol: SPDY/3.1+<upstream's X-Stream-Protocol-Version>` (so
//!    `SPDY/3.1+portforward.k8s.io`; no subprotocol header if upstream named none), then call
//!    [`tunnel_websocket_to_spdy`] with the upgraded upstream transport;
//! 3. if upstream refuses, pass its status and body on as the HTTP answer instead of upgrading.
//!
//! Raw bytes are needed upstream, so step 1 must use a transport rather than a
//! [`crate::spdy::Connection`]: see [`upgrade_raw`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use futures::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

pub use crate::spdy::upgrade_raw;

/// The prefix of tunneling WebSocket subprotocols.
pub const TUNNEL_PREFIX: &str = "SPDY/3.1+";
/// The SPDY sub-protocol of port-forward.
pub const PORT_FORWARD_PROTOCOL: &str = "portforward.k8s.io";

/// The SPDY protocols tunneled by the offered WebSocket subprotocols (`Sec-WebSocket-Protocol`
/// header values, comma-separated lists), in client order.
pub fn tunneled_spdy_protocols<'a, I>(header_values: I) -> Vec<String>
where
    I: IntoIterator<Item = &'a str>,
{
    header_values
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter_map(|p| p.strip_prefix(TUNNEL_PREFIX))
        .filter(|p| p.ends_with(".k8s.io"))
        .map(str::to_string)
        .collect()
}

/// The WebSocket subprotocol to answer for the SPDY protocol upstream chose.
pub fn tunnel_subprotocol(upstream_protocol: &str) -> String {
    format!("{TUNNEL_PREFIX}{upstream_protocol}")
}

/// A byte stream over a WebSocket: reads are the payloads of binary messages in order, writes
/// go out as one binary message each, shutdown sends a normal close. A text message is an
/// error (the tunnel carries binary only); a close or the end of the WebSocket reads as EOF.
pub struct WsByteStream<S> {
    ws: WebSocketStream<S>,
    pending: Bytes,
    read_done: bool,
    close_sent: bool,
}

impl<S> std::fmt::Debug for WsByteStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsByteStream")
            .field("pending", &self.pending.len())
            .field("read_done", &self.read_done)
            .field("close_sent", &self.close_sent)
            .finish()
    }
}

impl<S> WsByteStream<S> {
    pub fn new(ws: WebSocketStream<S>) -> Self {
        WsByteStream {
            ws,
            pending: Bytes::new(),
            read_done: false,
            close_sent: false,
        }
    }

    pub fn into_inner(self) -> WebSocketStream<S> {
        self.ws
    }
}

fn ws_err(e: tokio_tungstenite::tungstenite::Error) -> io::Error {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Io(e) => e,
        E::ConnectionClosed | E::AlreadyClosed => {
            io::Error::new(io::ErrorKind::BrokenPipe, "WebSocket closed")
        }
        other => io::Error::other(other),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsByteStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                buf.put_slice(&self.pending[..n]);
                self.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            if self.read_done {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(b))) => self.pending = b,
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text message in a binary tunnel",
                    )));
                }
                Some(Ok(Message::Close(_))) | None => self.read_done = true,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    self.read_done = true;
                    return Poll::Ready(Err(ws_err(e)));
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsByteStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.close_sent {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write after shutdown",
            )));
        }
        ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(ws_err)?;
        Pin::new(&mut self.ws)
            .start_send(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(ws_err)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_flush(cx).map_err(ws_err)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        use tokio_tungstenite::tungstenite::Error as E;
        if !self.close_sent {
            let sent = match ready!(Pin::new(&mut self.ws).poll_ready(cx)) {
                Ok(()) => Pin::new(&mut self.ws).start_send(Message::Close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: "".into(),
                }))),
                Err(e) => Err(e),
            };
            self.close_sent = true;
            match sent {
                Ok(()) => {}
                // The peer closed first and its close was answered: the close is done.
                Err(E::ConnectionClosed | E::AlreadyClosed) => return Poll::Ready(Ok(())),
                Err(e) => return Poll::Ready(Err(ws_err(e))),
            }
        }
        match ready!(Pin::new(&mut self.ws).poll_flush(cx)) {
            Ok(()) | Err(E::ConnectionClosed | E::AlreadyClosed) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(ws_err(e))),
        }
    }
}

/// Relays bytes both ways between the tunneling WebSocket and the upgraded upstream transport
/// until both directions are done. Upstream's EOF becomes a normal WebSocket close; the
/// client's close (which, in WebSocket, ends both directions) becomes EOF upstream, and
/// whatever upstream still sends then is dropped without counting as an error.
pub async fn tunnel_websocket_to_spdy<S, U>(
    ws: WebSocketStream<S>,
    mut upstream: U,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let mut client = WsByteStream::new(ws);
    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        Ok((up, down)) => {
            tracing::debug!(up, down, "port-forward tunnel finished");
            Ok(())
        }
        Err(e) if client.read_done && e.kind() == io::ErrorKind::BrokenPipe => {
            let _ = upstream.shutdown().await;
            Ok(())
        }
        Err(e) => Err(e),
    }
}
