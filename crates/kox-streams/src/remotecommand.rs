//! Exec/attach: a WebSocket client (`v5.channel.k8s.io` or `v4.channel.k8s.io`) bridged to a
//! SPDY `v4.channel.k8s.io` connection, for runtimes whose stream server does not speak v5
//! (containerd 1.6). It does what Kubernetes' stream translator does with client-go's SPDY
//! executor.

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::channel::{self, ChannelMessage, Protocol};
use crate::spdy::{self, Connection, HEADER_STREAM_TYPE, RecvStream, SendStream};

/// The SPDY sub-protocol the bridge needs from the runtime.
pub const SPDY_PROTOCOL_V4: &str = "v4.channel.k8s.io";

/// How long the runtime gets to answer each stream's SYN_STREAM (its own wait for the
/// client's streams, the kubelet's default stream creation timeout, is as long).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// `streamType` header values.
pub mod stream_type {
    pub const ERROR: &str = "error";
    pub const STDIN: &str = "stdin";
    pub const STDOUT: &str = "stdout";
    pub const STDERR: &str = "stderr";
    pub const RESIZE: &str = "resize";
}

/// What the session carries. It must match the exec/attach request the runtime's URL was
/// issued for (the CRI request's stdin/stdout/stderr/tty): the runtime waits for exactly those
/// streams.
#[derive(Debug, Clone)]
pub struct BridgeOptions {
    /// The subprotocol negotiated with the WebSocket client.
    pub protocol: Protocol,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
    /// How long to wait, after the status and close frame are sent, for the client to close
    /// its side; the output still in flight reaches a slow client meanwhile.
    pub finish_timeout: Duration,
}

impl BridgeOptions {
    pub fn new(protocol: Protocol) -> Self {
        BridgeOptions {
            protocol,
            stdin: false,
            stdout: true,
            stderr: true,
            tty: false,
            finish_timeout: Duration::from_secs(5 * 60),
        }
    }
}

/// How a bridged session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeOutcome {
    /// The command finished; the status (a `metav1.Status` JSON) was sent on the error channel
    /// and the WebSocket closed.
    Completed { status: Bytes },
    /// The WebSocket client went away first; the SPDY streams were reset.
    ClientGone,
}

/// Errors before the session could start.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("opening the {0} stream: {1}")]
    OpenStream(&'static str, spdy::Error),
    #[error("WebSocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
}

/// When the first terminal size is sent to the runtime a second time.
const FIRST_SIZE_AGAIN: std::time::Duration = std::time::Duration::from_millis(300);

/// The status sent when the runtime's error stream ends empty.
pub const SUCCESS_STATUS: &str = r#"{"metadata":{},"status":"Success"}"#;

/// A `metav1.Status` for an internal failure, as Kubernetes' `NewInternalError` words it.
pub fn internal_error_status(message: &str) -> String {
    serde_json::json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {message}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    })
    .to_string()
}

/// Runs one exec/attach session between `ws` (server role, handshake done with
/// `opts.protocol`) and `spdy_conn` (client role, negotiated `v4.channel.k8s.io`).
///
/// The SPDY streams are opened as client-go's executor opens them, each with only a
/// `streamType` header and each awaiting its reply: `error`, then `stdin` (if stdin), `stdout`
/// (if stdout), `stderr` (if stderr and not tty), `resize` (if tty). Then:
/// - WebSocket channel 0 goes to stdin; the v5 close of channel 0 sends FIN on stdin;
/// - stdout and stderr go to channels 1 and 2;
/// - channel 4 terminal sizes are re-encoded one JSON object per line for the resize stream;
/// - once stdout and stderr have ended, the error stream's content (empty means success) goes
///   to channel 3, a normal close frame follows, and the client is given
///   `opts.finish_timeout` to close.
///
/// If the client goes first, every stream is reset. The SPDY connection is closed on return;
/// nothing outlives the call.
pub async fn bridge_websocket_to_spdy<S>(
    ws: WebSocketStream<S>,
    spdy_conn: Connection,
    opts: BridgeOptions,
) -> Result<BridgeOutcome, BridgeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let result = run(ws, &spdy_conn, &opts).await;
    spdy_conn.close().await;
    result
}

struct Streams {
    error: RecvStream,
    stdin: Option<SendStream>,
    stdout: Option<RecvStream>,
    stderr: Option<RecvStream>,
    resize: Option<SendStream>,
}

async fn open(
    conn: &Connection,
    kind: &'static str,
) -> Result<(RecvStream, SendStream), BridgeError> {
    let mut h = HeaderMap::new();
    h.insert(HEADER_STREAM_TYPE, HeaderValue::from_static(kind));
    let s = tokio::time::timeout(STREAM_CREATION_TIMEOUT, conn.open_stream(h))
        .await
        .map_err(|_| {
            BridgeError::OpenStream(kind, spdy::Error::Protocol("no SYN_REPLY in time".into()))
        })?
        .map_err(|e| BridgeError::OpenStream(kind, e))?;
    Ok(s.into_split())
}

async fn open_streams(conn: &Connection, opts: &BridgeOptions) -> Result<Streams, BridgeError> {
    let (error, error_send) = open(conn, stream_type::ERROR).await?;
    // This side never writes to the error stream; the runtime does not wait for a FIN on it.
    drop(error_send);
    let stdin = if opts.stdin {
        Some(open(conn, stream_type::STDIN).await?.1)
    } else {
        None
    };
    let stdout = if opts.stdout {
        Some(open(conn, stream_type::STDOUT).await?.0)
    } else {
        None
    };
    let stderr = if opts.stderr && !opts.tty {
        Some(open(conn, stream_type::STDERR).await?.0)
    } else {
        None
    };
    let resize = if opts.tty {
        Some(open(conn, stream_type::RESIZE).await?.1)
    } else {
        None
    };
    Ok(Streams {
        error,
        stdin,
        stdout,
        stderr,
        resize,
    })
}

async fn run<S>(
    ws: WebSocketStream<S>,
    conn: &Connection,
    opts: &BridgeOptions,
) -> Result<BridgeOutcome, BridgeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut sink, mut source) = ws.split();
    let proto = opts.protocol;
    let streams = match open_streams(conn, opts).await {
        Ok(s) => s,
        Err(e) => {
            let status = internal_error_status(&e.to_string());
            let _ = sink
                .send(channel::encode_data(
                    proto,
                    channel::ERROR,
                    status.as_bytes(),
                ))
                .await;
            let _ = sink.send(normal_close()).await;
            let _ = tokio::time::timeout(Duration::from_secs(5), drain(&mut source)).await;
            return Err(e);
        }
    };
    let Streams {
        error,
        stdin,
        stdout,
        stderr,
        resize,
    } = streams;

    // Tell the client the session is up: an empty message on the lowest channel it reads.
    let ready_channel = if opts.stdout {
        channel::STDOUT
    } else if opts.stderr {
        channel::STDERR
    } else {
        channel::ERROR
    };
    sink.send(channel::encode_data(proto, ready_channel, &[]))
        .await?;

    let (out_tx, out_rx) = mpsc::channel::<Message>(16);
    let writer = ws_writer(sink, out_rx);
    let output = async move {
        let (_, _, status) = tokio::join!(
            pump(stdout, channel::STDOUT, proto, out_tx.clone()),
            pump(stderr, channel::STDERR, proto, out_tx.clone()),
            read_status(error),
        );
        let _ = out_tx
            .send(channel::encode_data(proto, channel::ERROR, &status))
            .await;
        // Dropping the last sender lets the writer send the close frame.
        status
    };
    let session = async { tokio::join!(output, writer).0 };
    let reader = ws_reader(&mut source, proto, stdin, resize);
    tokio::pin!(session, reader);

    tokio::select! {
        status = &mut session => {
            // The client replies to the close frame once it has read everything.
            let _ = tokio::time::timeout(opts.finish_timeout, &mut reader).await;
            Ok(BridgeOutcome::Completed { status })
        }
        () = &mut reader => {
            tracing::debug!("exec/attach client went away; resetting the runtime's streams");
            Ok(BridgeOutcome::ClientGone)
        }
    }
}

fn normal_close() -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

async fn drain<St>(source: &mut St)
where
    St: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    while let Some(Ok(m)) = source.next().await {
        if matches!(m, Message::Close(_)) {
            break;
        }
    }
}

/// Sends queued messages to the client; once every sender is gone, sends a normal close.
async fn ws_writer<Si>(mut sink: Si, mut rx: mpsc::Receiver<Message>)
where
    Si: futures::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    while let Some(msg) = rx.recv().await {
        if sink.feed(msg).await.is_err() {
            return;
        }
        while let Ok(msg) = rx.try_recv() {
            if sink.feed(msg).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
    let _ = sink.send(normal_close()).await;
}

/// Copies one runtime output stream to a WebSocket channel until it ends.
async fn pump(stream: Option<RecvStream>, ch: u8, proto: Protocol, tx: mpsc::Sender<Message>) {
    let Some(mut stream) = stream else { return };
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => {
                if tx
                    .send(channel::encode_data(proto, ch, &buf[..n]))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(channel = ch, error = %e, "runtime output stream failed");
                return;
            }
        }
    }
}

/// Reads the runtime's error stream to its end: a `metav1.Status` JSON (v4), or nothing for
/// success.
async fn read_status(mut error: RecvStream) -> Bytes {
    let mut buf = Vec::new();
    match error.read_to_end(&mut buf).await {
        Ok(_) if buf.iter().all(u8::is_ascii_whitespace) => {
            Bytes::from_static(SUCCESS_STATUS.as_bytes())
        }
        Ok(_) => buf.into(),
        // The status written before a reset (the runtime resets the stream as it closes).
        Err(_) if !buf.iter().all(u8::is_ascii_whitespace) => buf.into(),
        Err(e) => internal_error_status(&format!("error stream: {e}")).into(),
    }
}

/// Feeds client input to the runtime until the client closes the WebSocket (or it fails).
async fn ws_reader<St>(
    source: &mut St,
    proto: Protocol,
    mut stdin: Option<SendStream>,
    mut resize: Option<SendStream>,
) where
    St: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut sizes = ResizeDecoder::default();
    // The first terminal size again a moment later: containerd 1.6 applies a resize only once
    // the exec'd process runs, and drops one that comes before (the client sends its size at
    // once, then only when the terminal changes).
    let mut repeat: Option<(tokio::time::Instant, String)> = None;
    let mut repeated = false;
    loop {
        let deadline = repeat.as_ref().map(|(at, _)| *at);
        let msg = tokio::select! {
            m = source.next() => m,
            _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() => {
                if let (Some((_, line)), Some(s)) = (repeat.take(), resize.as_mut()) {
                    let _ = s.write_all(line.as_bytes()).await;
                }
                continue;
            }
        };
        let Some(msg) = msg else { return };
        let msg = match msg {
            Ok(Message::Close(_)) => return,
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "exec/attach WebSocket read failed");
                return;
            }
        };
        let decoded = match channel::decode(proto, &msg) {
            Ok(Some(d)) => d,
            Ok(None) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "ignoring malformed channel message");
                continue;
            }
        };
        match decoded {
            ChannelMessage::Data {
                channel: channel::STDIN,
                data,
            } => {
                if let Some(s) = stdin.as_mut()
                    && !data.is_empty()
                    && let Err(e) = s.write_all(&data).await
                {
                    tracing::debug!(error = %e, "runtime stdin closed");
                    stdin = None;
                }
            }
            ChannelMessage::Data {
                channel: channel::RESIZE,
                data,
            } => {
                let Some(s) = resize.as_mut() else { continue };
                for line in sizes.push(&data) {
                    if s.write_all(line.as_bytes()).await.is_err() {
                        resize = None;
                        break;
                    }
                    if !repeated {
                        repeated = true;
                        repeat = Some((tokio::time::Instant::now() + FIRST_SIZE_AGAIN, line));
                    } else {
                        // A newer size supersedes the repeat.
                        repeat = None;
                    }
                }
            }
            ChannelMessage::Data { channel, .. } => {
                tracing::debug!(
                    channel,
                    "ignoring data on a channel the client does not write"
                );
            }
            ChannelMessage::Close { channel } => match channel {
                channel::STDIN => {
                    if let Some(s) = stdin.as_ref() {
                        let _ = s.close_send();
                    }
                }
                channel::RESIZE => {
                    if let Some(s) = resize.as_ref() {
                        let _ = s.close_send();
                    }
                }
                _ => {}
            },
        }
    }
}

/// Turns the client's resize channel, a stream of JSON objects split anywhere across
/// messages, into the lines client-go writes to the resize stream (`{"Width":W,"Height":H}`
/// and a newline). Like Kubernetes, it stops at the first malformed value.
#[derive(Debug, Default)]
pub struct ResizeDecoder {
    buf: Vec<u8>,
    broken: bool,
}

impl ResizeDecoder {
    /// Adds received bytes; returns the complete sizes they finish, one line each.
    pub fn push(&mut self, data: &[u8]) -> Vec<String> {
        if self.broken {
            return Vec::new();
        }
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut consumed = 0;
        let mut it =
            serde_json::Deserializer::from_slice(&self.buf).into_iter::<serde_json::Value>();
        loop {
            match it.next() {
                Some(Ok(v)) => {
                    consumed = it.byte_offset();
                    let dim = |k: &str| {
                        v.get(k)
                            .and_then(|x| x.as_u64())
                            .and_then(|x| u16::try_from(x).ok())
                    };
                    match (dim("Width"), dim("Height")) {
                        (Some(w), Some(h)) => {
                            out.push(format!("{{\"Width\":{w},\"Height\":{h}}}\n"))
                        }
                        _ if v.is_object() => {
                            let w = dim("Width").unwrap_or(0);
                            let h = dim("Height").unwrap_or(0);
                            out.push(format!("{{\"Width\":{w},\"Height\":{h}}}\n"));
                        }
                        _ => {
                            self.broken = true;
                            break;
                        }
                    }
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(_)) => {
                    self.broken = true;
                    break;
                }
                None => {
                    consumed = self.buf.len();
                    break;
                }
            }
        }
        self.buf.drain(..consumed);
        if self.broken {
            self.buf.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_values_split_across_messages() {
        let mut d = ResizeDecoder::default();
        assert!(d.push(br#"{"Width":80,"#).is_empty());
        assert_eq!(
            d.push(b"\"Height\":24}\n{\"Height\":50,\"Width\":100}"),
            vec![
                "{\"Width\":80,\"Height\":24}\n".to_string(),
                "{\"Width\":100,\"Height\":50}\n".to_string()
            ]
        );
        assert_eq!(d.push(b"  "), Vec::<String>::new());
        assert_eq!(d.push(b"[1]"), Vec::<String>::new());
        assert_eq!(d.push(br#"{"Width":1,"Height":1}"#), Vec::<String>::new());
    }

    #[test]
    fn internal_error_is_a_failure_status() {
        let v: serde_json::Value = serde_json::from_str(&internal_error_status("boom")).unwrap();
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["reason"], "InternalError");
        assert_eq!(v["code"], 500);
    }
}
