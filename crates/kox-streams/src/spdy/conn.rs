//! A SPDY/3.1 connection multiplexing streams over one byte stream.
//!
//! Two tasks own the transport: a reader that decodes frames and files their payloads into
//! per-stream buffers, and a writer that encodes queued frames in order. Stream handles only
//! touch the shared state under a short lock, so a stream whose reader is slow never holds up
//! the frames of another.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::Error;
use super::frame::{Frame, FrameDecoder, FrameEncoder, goaway, rst, settings};

/// The initial flow-control window of SPDY/3.1, per stream and per connection.
pub const INITIAL_WINDOW: u32 = 64 * 1024;

/// The largest DATA payload written in one frame; smaller frames keep streams interleaved.
const MAX_DATA_CHUNK: usize = 32 * 1024;

/// DATA bytes that may wait for the writer task across all streams before writers are made to
/// wait: the transport's own backpressure reaches stream writers through it.
const MAX_QUEUED_DATA: usize = 256 * 1024;

/// Which end of the connection this is; it decides the parity of stream and ping ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Opens odd-numbered streams.
    Client,
    /// Opens even-numbered streams.
    Server,
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// SPDY/3.1 flow control: never send beyond the peer's stream and connection windows, and
    /// send WINDOW_UPDATE as received data is consumed.
    ///
    /// Kubernetes' Go SPDY stack (moby/spdystream, used by the kubelet, containerd's and
    /// CRI-O's stream servers and client-go) implements neither half: it never sends
    /// WINDOW_UPDATE and ignores the ones it receives. Talking to it with flow control on would
    /// stall every stream after its first 64 KiB, so [`Config::spdystream`] turns it off.
    pub flow_control: bool,
    /// How many received bytes one stream may hold unread before the connection stops reading
    /// from the transport. A peer that honours flow control never gets near it (a stream's
    /// buffer is bounded by its window); it bounds memory for a peer that ignores windows, at
    /// the price, for that peer only, of a slow stream stalling the connection.
    pub max_stream_buffer: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            flow_control: true,
            max_stream_buffer: 4 * 1024 * 1024,
        }
    }
}

impl Config {
    /// Settings for a peer built on moby/spdystream (kubelet, containerd, CRI-O, client-go):
    /// flow control off, see [`Config::flow_control`].
    pub fn spdystream() -> Self {
        Config {
            flow_control: false,
            ..Config::default()
        }
    }
}

struct StreamState {
    recv_buf: VecDeque<Bytes>,
    recv_buffered: usize,
    recv_fin: bool,
    recv_unacked: u32,
    reset: Option<u32>,
    read_waker: Option<Waker>,
    send_window: i64,
    send_fin: bool,
    write_waker: Option<Waker>,
    reply: Option<oneshot::Sender<Result<HeaderMap, Error>>>,
}

impl StreamState {
    fn new(send_window: i64) -> Self {
        StreamState {
            recv_buf: VecDeque::new(),
            recv_buffered: 0,
            recv_fin: false,
            recv_unacked: 0,
            reset: None,
            read_waker: None,
            send_window,
            send_fin: false,
            write_waker: None,
            reply: None,
        }
    }

    fn wake(&mut self) {
        if let Some(w) = self.read_waker.take() {
            w.wake();
        }
        if let Some(w) = self.write_waker.take() {
            w.wake();
        }
    }
}

type Accepted = (HeaderMap, Stream);

struct State {
    streams: HashMap<u32, StreamState>,
    next_stream_id: u32,
    last_peer_stream_id: u32,
    next_ping_id: u32,
    pings: HashMap<u32, oneshot::Sender<()>>,
    conn_send_window: i64,
    peer_initial_window: i64,
    conn_recv_unacked: u32,
    queued_data: usize,
    queue_wakers: Vec<Waker>,
    go_away_received: bool,
    go_away_sent: bool,
    closed: Option<String>,
    handles: usize,
    accept_tx: Option<mpsc::UnboundedSender<Accepted>>,
}

struct Shared {
    state: Mutex<State>,
    tx: mpsc::UnboundedSender<Frame>,
    shutdown: watch::Sender<bool>,
    buffer_drained: Notify,
    config: Config,
    role: Role,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, frame: Frame) {
        // The writer task only goes away with the connection; a frame for a dead connection
        // has nowhere to go.
        let _ = self.tx.send(frame);
    }

    fn our_parity(&self) -> u32 {
        match self.role {
            Role::Client => 1,
            Role::Server => 0,
        }
    }

    /// Marks the connection dead: every stream and waiter sees the failure and both tasks stop.
    fn fail(&self, st: &mut State, reason: String) {
        if st.closed.is_none() {
            tracing::debug!(%reason, "SPDY connection closed");
            st.closed = Some(reason);
        }
        for s in st.streams.values_mut() {
            if let Some(r) = s.reply.take() {
                let _ = r.send(Err(Error::Closed));
            }
            s.wake();
        }
        st.pings.clear();
        st.accept_tx = None;
        for w in st.queue_wakers.drain(..) {
            w.wake();
        }
        self.buffer_drained.notify_waiters();
        let _ = self.shutdown.send(true);
    }

    fn release_handle(&self) {
        let mut st = self.lock();
        st.handles -= 1;
        if st.handles == 0 {
            self.fail(&mut st, "all handles dropped".into());
        }
    }
}

/// A SPDY/3.1 connection. Dropping it does not end streams already opened or accepted; the
/// connection closes once it and every stream handle are gone, or at [`Connection::close`].
pub struct Connection {
    shared: Arc<Shared>,
    accept_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Accepted>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.shared.role)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Starts a connection over `io` with default settings (flow control on).
    pub fn new<T>(io: T, role: Role) -> Connection
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        Self::with_config(io, role, Config::default())
    }

    /// Starts a connection over `io`. Must be called within a Tokio runtime.
    pub fn with_config<T>(io: T, role: Role, config: Config) -> Connection
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (frame_tx, frame_rx) = mpsc::unbounded_channel();
        let (accept_tx, accept_rx) = mpsc::unbounded_channel();
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let state = State {
            streams: HashMap::new(),
            next_stream_id: match role {
                Role::Client => 1,
                Role::Server => 2,
            },
            last_peer_stream_id: 0,
            next_ping_id: match role {
                Role::Client => 1,
                Role::Server => 2,
            },
            pings: HashMap::new(),
            conn_send_window: INITIAL_WINDOW as i64,
            peer_initial_window: INITIAL_WINDOW as i64,
            conn_recv_unacked: 0,
            queued_data: 0,
            queue_wakers: Vec::new(),
            go_away_received: false,
            go_away_sent: false,
            closed: None,
            handles: 1,
            accept_tx: Some(accept_tx),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            tx: frame_tx,
            shutdown: shutdown_tx,
            buffer_drained: Notify::new(),
            config,
            role,
        });
        let (rd, wr) = tokio::io::split(io);
        tokio::spawn(read_loop(shared.clone(), rd, shutdown_rx.clone()));
        let writer = tokio::spawn(write_loop(shared.clone(), wr, frame_rx, shutdown_rx));
        Connection {
            shared,
            accept_rx: tokio::sync::Mutex::new(accept_rx),
            writer: Mutex::new(Some(writer)),
        }
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.shared.role
    }

    /// Opens a stream with `headers` (names lowercase) and waits for the peer's SYN_REPLY.
    /// Dropping the returned future before the reply resets the stream.
    pub async fn open_stream(&self, headers: HeaderMap) -> Result<Stream, Error> {
        let (reply_tx, reply_rx) = oneshot::channel();
        let sref = {
            let mut st = self.shared.lock();
            if st.closed.is_some() {
                return Err(Error::Closed);
            }
            if st.go_away_received || st.go_away_sent {
                return Err(Error::GoAway);
            }
            let id = st.next_stream_id;
            if id > 0x7fff_ffff {
                return Err(Error::Protocol("stream ids exhausted".into()));
            }
            st.next_stream_id += 2;
            let mut s = StreamState::new(st.peer_initial_window);
            s.reply = Some(reply_tx);
            st.streams.insert(id, s);
            st.handles += 1;
            self.shared.send(Frame::SynStream {
                stream_id: id,
                associated_to: 0,
                priority: 0,
                slot: 0,
                fin: false,
                unidirectional: false,
                headers,
            });
            Arc::new(StreamRef {
                shared: self.shared.clone(),
                id,
            })
        };
        let reply_headers = match reply_rx.await {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(Error::Closed),
        };
        Ok(Stream {
            inner: sref,
            headers: reply_headers,
        })
    }

    /// The next stream the peer opened, with the headers of its SYN_STREAM; `None` once the
    /// connection is closed. The SYN_REPLY was already sent when the stream arrived.
    pub async fn accept_stream(&self) -> Option<(HeaderMap, Stream)> {
        self.accept_rx.lock().await.recv().await
    }

    /// Sends a PING and waits for its echo.
    pub async fn ping(&self) -> Result<Duration, Error> {
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.shared.lock();
            if st.closed.is_some() {
                return Err(Error::Closed);
            }
            let id = st.next_ping_id;
            st.next_ping_id = if id > 0x7fff_fffd { id % 2 + 1 } else { id + 2 };
            st.pings.insert(id, tx);
            self.shared.send(Frame::Ping { id });
        }
        let start = Instant::now();
        rx.await.map_err(|_| Error::Closed)?;
        Ok(start.elapsed())
    }

    /// Whether the connection is gone (closed locally, by the peer, or on an error).
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed.is_some()
    }

    /// Waits until the connection is gone.
    pub async fn closed(&self) {
        let mut rx = self.shared.shutdown.subscribe();
        let _ = rx.wait_for(|v| *v).await;
    }

    /// Sends GOAWAY, fails every stream still open, writes what is queued and closes the
    /// transport. Waits until the writer has finished.
    pub async fn close(&self) {
        {
            let mut st = self.shared.lock();
            if st.closed.is_none() && !st.go_away_sent {
                st.go_away_sent = true;
                self.shared.send(Frame::GoAway {
                    last_good_stream_id: st.last_peer_stream_id,
                    status: goaway::OK,
                });
            }
            if st.closed.is_none() {
                for (id, s) in st.streams.iter_mut() {
                    if s.reset.is_none() && !(s.send_fin && s.recv_fin) {
                        s.reset = Some(rst::CANCEL);
                        self.shared.send(Frame::RstStream {
                            stream_id: *id,
                            status: rst::CANCEL,
                        });
                    }
                }
            }
            self.shared.fail(&mut st, "closed locally".into());
        }
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = writer {
            let _ = w.await;
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.release_handle();
    }
}

struct StreamRef {
    shared: Arc<Shared>,
    id: u32,
}

impl Drop for StreamRef {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        if let Some(s) = st.streams.remove(&self.id)
            && st.closed.is_none()
            && s.reset.is_none()
            && !(s.send_fin && s.recv_fin)
        {
            self.shared.send(Frame::RstStream {
                stream_id: self.id,
                status: rst::CANCEL,
            });
        }
        self.shared.buffer_drained.notify_waiters();
        st.handles -= 1;
        if st.handles == 0 {
            self.shared.fail(&mut st, "all handles dropped".into());
        }
    }
}

impl StreamRef {
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let shared = &self.shared;
        let mut st = shared.lock();
        let closed = st.closed.clone();
        let Some(s) = st.streams.get_mut(&self.id) else {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "stream is gone",
            )));
        };
        // What the peer sent before a reset is still read (Kubernetes' stream servers reset
        // the error stream right after writing the exit status); then the reset is an error.
        if s.recv_buf.is_empty()
            && let Some(status) = s.reset
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                format!("stream reset (status {status})"),
            )));
        }
        if s.recv_buf.is_empty() {
            if s.recv_fin {
                return Poll::Ready(Ok(()));
            }
            if let Some(reason) = closed {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    format!("SPDY connection closed: {reason}"),
                )));
            }
            s.read_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let mut n = 0;
        while buf.remaining() > 0 {
            let Some(front) = s.recv_buf.front_mut() else {
                break;
            };
            let k = front.len().min(buf.remaining());
            buf.put_slice(&front.split_to(k));
            n += k;
            if front.is_empty() {
                s.recv_buf.pop_front();
            }
        }
        let was_over = s.recv_buffered > shared.config.max_stream_buffer;
        s.recv_buffered -= n;
        if shared.config.flow_control && !s.recv_fin {
            s.recv_unacked += n as u32;
            if s.recv_unacked >= INITIAL_WINDOW / 2 {
                let delta = std::mem::take(&mut s.recv_unacked);
                shared.send(Frame::WindowUpdate {
                    stream_id: self.id,
                    delta,
                });
            }
        }
        if was_over && s.recv_buffered <= shared.config.max_stream_buffer {
            shared.buffer_drained.notify_waiters();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let shared = &self.shared;
        let mut st = shared.lock();
        if let Some(reason) = &st.closed {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("SPDY connection closed: {reason}"),
            )));
        }
        let queue_full = st.queued_data >= MAX_QUEUED_DATA;
        let conn_window = st.conn_send_window;
        let Some(s) = st.streams.get_mut(&self.id) else {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "stream is gone",
            )));
        };
        if let Some(status) = s.reset {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                format!("stream reset (status {status})"),
            )));
        }
        if s.send_fin {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write after the stream was closed for writing",
            )));
        }
        let mut n = buf.len().min(MAX_DATA_CHUNK);
        if shared.config.flow_control {
            let window = s.send_window.min(conn_window);
            if window <= 0 {
                s.write_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            n = n.min(window as usize);
        }
        if queue_full {
            st.queue_wakers.push(cx.waker().clone());
            return Poll::Pending;
        }
        if shared.config.flow_control
            && let Some(s) = st.streams.get_mut(&self.id)
        {
            s.send_window -= n as i64;
        }
        if shared.config.flow_control {
            st.conn_send_window -= n as i64;
        }
        st.queued_data += n;
        shared.send(Frame::Data {
            stream_id: self.id,
            fin: false,
            data: Bytes::copy_from_slice(&buf[..n]),
        });
        Poll::Ready(Ok(n))
    }

    /// Sends FIN once; later calls do nothing.
    fn close_send(&self) -> io::Result<()> {
        let mut st = self.shared.lock();
        if let Some(reason) = &st.closed {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("SPDY connection closed: {reason}"),
            ));
        }
        let Some(s) = st.streams.get_mut(&self.id) else {
            return Ok(());
        };
        if s.send_fin || s.reset.is_some() {
            return Ok(());
        }
        s.send_fin = true;
        self.shared.send(Frame::Data {
            stream_id: self.id,
            fin: true,
            data: Bytes::new(),
        });
        Ok(())
    }

    fn reset(&self) {
        let mut st = self.shared.lock();
        let closed = st.closed.is_some();
        if let Some(s) = st.streams.get_mut(&self.id)
            && s.reset.is_none()
        {
            s.reset = Some(rst::CANCEL);
            s.recv_buf.clear();
            s.recv_buffered = 0;
            s.wake();
            if !closed {
                self.shared.send(Frame::RstStream {
                    stream_id: self.id,
                    status: rst::CANCEL,
                });
            }
        }
        self.shared.buffer_drained.notify_waiters();
    }
}

/// One SPDY stream: `AsyncRead` yields the peer's DATA until its FIN, `AsyncWrite` sends DATA
/// within the flow-control windows, and `shutdown` sends FIN (half-close). Dropping a stream
/// that is not finished both ways resets it.
pub struct Stream {
    inner: Arc<StreamRef>,
    headers: HeaderMap,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("id", &self.inner.id)
            .field("headers", &self.headers)
            .finish()
    }
}

impl Stream {
    /// The stream id (odd for client-opened streams, even for server-opened ones).
    pub fn id(&self) -> u32 {
        self.inner.id
    }

    /// The headers of the peer's SYN_STREAM (accepted streams) or SYN_REPLY (opened streams).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Sends FIN: this side will send no more data. Idempotent.
    pub fn close_send(&self) -> io::Result<()> {
        self.inner.close_send()
    }

    /// Resets the stream (RST_STREAM CANCEL), ending both directions at once.
    pub fn reset(&self) {
        self.inner.reset()
    }

    /// Splits into a receiving and a sending half usable from different tasks.
    pub fn into_split(self) -> (RecvStream, SendStream) {
        (
            RecvStream {
                inner: self.inner.clone(),
            },
            SendStream { inner: self.inner },
        )
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.inner.poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.inner.close_send())
    }
}

/// The receiving half of a [`Stream`].
pub struct RecvStream {
    inner: Arc<StreamRef>,
}

impl std::fmt::Debug for RecvStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvStream")
            .field("id", &self.inner.id)
            .finish()
    }
}

impl RecvStream {
    pub fn id(&self) -> u32 {
        self.inner.id
    }

    pub fn reset(&self) {
        self.inner.reset()
    }
}

impl AsyncRead for RecvStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.inner.poll_read(cx, buf)
    }
}

/// The sending half of a [`Stream`]; `shutdown` sends FIN.
pub struct SendStream {
    inner: Arc<StreamRef>,
}

impl std::fmt::Debug for SendStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendStream")
            .field("id", &self.inner.id)
            .finish()
    }
}

impl SendStream {
    pub fn id(&self) -> u32 {
        self.inner.id
    }

    pub fn close_send(&self) -> io::Result<()> {
        self.inner.close_send()
    }

    pub fn reset(&self) {
        self.inner.reset()
    }
}

impl AsyncWrite for SendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.inner.close_send())
    }
}

async fn read_loop<R>(shared: Arc<Shared>, mut rd: R, mut shutdown: watch::Receiver<bool>)
where
    R: AsyncRead + Unpin,
{
    let mut decoder = FrameDecoder::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let reason = 'outer: loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    if let Some(wait_for) = handle_frame(&shared, frame)
                        && !wait_buffer_drained(&shared, wait_for, &mut shutdown).await
                    {
                        break 'outer "shut down".to_string();
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let mut st = shared.lock();
                    if st.closed.is_none() {
                        shared.send(Frame::GoAway {
                            last_good_stream_id: st.last_peer_stream_id,
                            status: goaway::PROTOCOL_ERROR,
                        });
                    }
                    st.go_away_sent = true;
                    break 'outer format!("protocol error: {e}");
                }
            }
        }
        if *shutdown.borrow() {
            break "shut down".to_string();
        }
        tokio::select! {
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) => break "peer closed the connection".to_string(),
                Ok(_) => {}
                Err(e) => break format!("read error: {e}"),
            },
            _ = shutdown.changed() => break "shut down".to_string(),
        }
    };
    let mut st = shared.lock();
    shared.fail(&mut st, reason);
}

/// Waits while stream `id` holds more than its buffer limit (a peer ignoring flow control).
/// Returns false when the connection shut down meanwhile.
async fn wait_buffer_drained(
    shared: &Shared,
    id: u32,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    loop {
        let notified = shared.buffer_drained.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let st = shared.lock();
            if st.closed.is_some() {
                return false;
            }
            match st.streams.get(&id) {
                Some(s) if s.recv_buffered > shared.config.max_stream_buffer => {}
                _ => return true,
            }
        }
        tokio::select! {
            _ = notified => {}
            _ = shutdown.changed() => return false,
        }
    }
}

/// Applies one received frame. Returns a stream id when the reader must wait for that stream's
/// buffer to drain before reading on.
fn handle_frame(shared: &Arc<Shared>, frame: Frame) -> Option<u32> {
    let mut accepted = None;
    let mut wait = None;
    {
        let mut st = shared.lock();
        let st = &mut *st;
        match frame {
            Frame::SynStream {
                stream_id,
                fin,
                unidirectional,
                headers,
                ..
            } => {
                if st.go_away_sent || st.closed.is_some() {
                    shared.send(Frame::RstStream {
                        stream_id,
                        status: rst::REFUSED_STREAM,
                    });
                } else if stream_id % 2 == shared.our_parity()
                    || stream_id <= st.last_peer_stream_id
                    || stream_id == 0
                {
                    shared.send(Frame::RstStream {
                        stream_id,
                        status: rst::PROTOCOL_ERROR,
                    });
                } else {
                    st.last_peer_stream_id = stream_id;
                    let mut s = StreamState::new(st.peer_initial_window);
                    s.recv_fin = fin;
                    // The receiver of a unidirectional stream never sends on it.
                    s.send_fin = unidirectional;
                    st.streams.insert(stream_id, s);
                    if !unidirectional {
                        shared.send(Frame::SynReply {
                            stream_id,
                            fin: false,
                            headers: HeaderMap::new(),
                        });
                    }
                    st.handles += 1;
                    let stream = Stream {
                        inner: Arc::new(StreamRef {
                            shared: shared.clone(),
                            id: stream_id,
                        }),
                        headers: headers.clone(),
                    };
                    accepted = Some((st.accept_tx.clone(), (headers, stream)));
                }
            }
            Frame::SynReply {
                stream_id,
                fin,
                headers,
            } => {
                if let Some(s) = st.streams.get_mut(&stream_id) {
                    if let Some(r) = s.reply.take() {
                        let _ = r.send(Ok(headers));
                    }
                    if fin {
                        s.recv_fin = true;
                        s.wake();
                    }
                }
            }
            Frame::Headers { stream_id, fin, .. } => {
                if fin && let Some(s) = st.streams.get_mut(&stream_id) {
                    s.recv_fin = true;
                    s.wake();
                }
            }
            Frame::RstStream { stream_id, status } => {
                if let Some(s) = st.streams.get_mut(&stream_id) {
                    s.reset = Some(status);
                    if let Some(r) = s.reply.take() {
                        let _ = r.send(Err(Error::Reset(status)));
                    }
                    s.wake();
                    shared.buffer_drained.notify_waiters();
                }
            }
            Frame::Settings { entries, .. } => {
                for e in entries {
                    match e.id {
                        settings::INITIAL_WINDOW_SIZE => {
                            let new = e.value as i64;
                            let delta = new - st.peer_initial_window;
                            st.peer_initial_window = new;
                            for s in st.streams.values_mut() {
                                s.send_window += delta;
                                s.wake();
                            }
                        }
                        settings::MAX_CONCURRENT_STREAMS => {}
                        _ => {}
                    }
                }
            }
            Frame::Ping { id } => {
                if id % 2 == shared.our_parity() {
                    if let Some(tx) = st.pings.remove(&id) {
                        let _ = tx.send(());
                    }
                } else {
                    shared.send(Frame::Ping { id });
                }
            }
            Frame::GoAway {
                last_good_stream_id,
                ..
            } => {
                st.go_away_received = true;
                let parity = shared.our_parity();
                for (id, s) in st.streams.iter_mut() {
                    if id % 2 == parity && *id > last_good_stream_id && s.reset.is_none() {
                        s.reset = Some(rst::REFUSED_STREAM);
                        if let Some(r) = s.reply.take() {
                            let _ = r.send(Err(Error::GoAway));
                        }
                        s.wake();
                    }
                }
            }
            Frame::WindowUpdate { stream_id, delta } => {
                if stream_id == 0 {
                    st.conn_send_window += delta as i64;
                    for s in st.streams.values_mut() {
                        if let Some(w) = s.write_waker.take() {
                            w.wake();
                        }
                    }
                } else if let Some(s) = st.streams.get_mut(&stream_id) {
                    s.send_window += delta as i64;
                    if let Some(w) = s.write_waker.take() {
                        w.wake();
                    }
                }
            }
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                let len = data.len();
                if shared.config.flow_control && len > 0 {
                    // The connection window is handed back on receipt: buffered data is
                    // bounded by the stream windows, and a stream nobody reads must not use
                    // up the window the other streams share.
                    st.conn_recv_unacked += len as u32;
                    if st.conn_recv_unacked >= INITIAL_WINDOW / 2 {
                        let delta = std::mem::take(&mut st.conn_recv_unacked);
                        shared.send(Frame::WindowUpdate {
                            stream_id: 0,
                            delta,
                        });
                    }
                }
                if let Some(s) = st.streams.get_mut(&stream_id)
                    && s.reset.is_none()
                    && !s.recv_fin
                {
                    if len > 0 {
                        s.recv_buf.push_back(data);
                        s.recv_buffered += len;
                        if s.recv_buffered > shared.config.max_stream_buffer {
                            wait = Some(stream_id);
                        }
                    }
                    if fin {
                        s.recv_fin = true;
                    }
                    if let Some(w) = s.read_waker.take() {
                        w.wake();
                    }
                }
            }
            Frame::Unknown { frame_type, .. } => {
                tracing::debug!(frame_type, "ignoring SPDY control frame");
            }
        }
    }
    // Outside the lock: a stream nobody will accept is dropped here, and its drop locks.
    if let Some((tx, item)) = accepted {
        match tx {
            Some(tx) => {
                let _ = tx.send(item);
            }
            None => drop(item),
        }
    }
    wait
}

async fn write_loop<W>(
    shared: Arc<Shared>,
    mut wr: W,
    mut rx: mpsc::UnboundedReceiver<Frame>,
    mut shutdown: watch::Receiver<bool>,
) where
    W: AsyncWrite + Unpin,
{
    let mut encoder = FrameEncoder::new();
    let mut out = BytesMut::with_capacity(64 * 1024);
    loop {
        let frame = tokio::select! {
            biased;
            f = rx.recv() => f,
            _ = shutdown.changed() => None,
        };
        let Some(frame) = frame else { break };
        let mut data_bytes = 0;
        let mut next = Some(frame);
        while let Some(frame) = next.take() {
            if let Frame::Data { data, .. } = &frame {
                data_bytes += data.len();
            }
            if let Err(e) = encoder.encode(&frame, &mut out) {
                let mut st = shared.lock();
                shared.fail(&mut st, format!("encoding a frame: {e}"));
                return;
            }
            if out.len() < 128 * 1024 {
                next = rx.try_recv().ok();
            }
        }
        if let Err(e) = write_out(&mut wr, &mut out).await {
            let mut st = shared.lock();
            shared.fail(&mut st, format!("write error: {e}"));
            return;
        }
        if data_bytes > 0 {
            let mut st = shared.lock();
            st.queued_data -= data_bytes;
            for w in st.queue_wakers.drain(..) {
                w.wake();
            }
        }
    }
    // Frames queued before the shutdown (RST, GOAWAY, a last FIN) still go out.
    while let Ok(frame) = rx.try_recv() {
        if encoder.encode(&frame, &mut out).is_err() {
            break;
        }
    }
    let _ = write_out(&mut wr, &mut out).await;
    let _ = wr.shutdown().await;
}

async fn write_out<W: AsyncWrite + Unpin>(wr: &mut W, out: &mut BytesMut) -> io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    wr.write_all(out).await?;
    out.clear();
    wr.flush().await
}
