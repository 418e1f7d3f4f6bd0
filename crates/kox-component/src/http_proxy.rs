//! Forwarding one HTTP request to a backend over a connection the caller opened (TCP to a
//! loopback stream server, TLS to a node agent), as upstream's `UpgradeAwareHandler`: an
//! ordinary request gets the backend's answer streamed back; an upgrade (WebSocket, SPDY) that
//! the backend accepts with `101` has both upgraded connections spliced until either side
//! closes, so the two ends speak their protocol to each other unchanged.

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// A connection of any kind (TCP, TLS) to forward over.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A response body that may stream (a followed log) or be whole (an error).
pub type Body = BoxBody<Bytes, hyper::Error>;

/// Headers that carry the client's own credentials or describe one hop's connection: never
/// passed to the backend (the hop to the backend authenticates itself).
const NOT_FORWARDED: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "host",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "te",
    "trailer",
    "sec-websocket-extensions",
];

/// Whether a request asks to switch protocols (`Connection: Upgrade` with an `Upgrade` header).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Whether the `Upgrade` header names WebSocket.
pub fn upgrades_to_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The headers of `from` worth passing on to a backend.
pub fn forwarded_headers(from: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in from {
        let n = name.as_str();
        if NOT_FORWARDED.contains(&n) || n.starts_with("impersonate-") {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// Sends `method path_and_query` with `headers` and `body` over `io` (HTTP/1.1) and returns the
/// backend's response. When `client` is the client's pending upgrade and the backend answers
/// `101 Switching Protocols`, the two connections are spliced in the background.
pub async fn forward<IO>(
    io: IO,
    authority: &str,
    method: http::Method,
    path_and_query: &str,
    headers: HeaderMap,
    body: Bytes,
    client: Option<OnUpgrade>,
) -> anyhow::Result<Response<Body>>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let mut req = Request::builder()
        .method(method)
        .uri(path_and_query)
        .body(Full::new(body))?;
    *req.headers_mut() = headers;
    req.headers_mut().insert(header::HOST, authority.parse()?);
    let mut resp = sender.send_request(req).await?;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client) = client else {
            anyhow::bail!("the backend switched protocols on a request that did not ask to");
        };
        let websocket = upgrades_to_websocket(resp.headers());
        let backend = hyper::upgrade::on(&mut resp);
        tokio::spawn(splice(client, backend, websocket));
        let (parts, _) = resp.into_parts();
        return Ok(Response::from_parts(parts, empty()));
    }
    Ok(resp.map(|b| b.boxed()))
}

/// Copies bytes both ways between two upgraded connections until both directions are done.
/// A WebSocket's messages to the client go one per write (so one per TLS record): clients that
/// poll their socket before reading a message (the Python client's `stream()`) would otherwise
/// never see messages that arrived in one record with an earlier one.
async fn splice(client: OnUpgrade, backend: OnUpgrade, websocket: bool) {
    let (Ok(client), Ok(backend)) = (client.await, backend.await) else {
        return;
    };
    let (mut client, mut backend) = (TokioIo::new(client), TokioIo::new(backend));
    if !websocket {
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
            tracing::debug!(error = %e, "upgraded stream ended");
        }
        return;
    }
    let (mut from_client, mut to_client) = tokio::io::split(client);
    let (mut from_backend, mut to_backend) = tokio::io::split(backend);
    let up = async {
        let _ = tokio::io::copy(&mut from_client, &mut to_backend).await;
        let _ = to_backend.shutdown().await;
    };
    let down = async {
        let _ = copy_frames(&mut from_backend, &mut to_client).await;
        let _ = to_client.shutdown().await;
    };
    tokio::join!(up, down);
}

/// Above this, a WebSocket frame still incomplete is passed on in parts.
const MAX_HELD_FRAME: usize = 1 << 20;

/// Copies WebSocket frames from `from` to `to`, each complete frame in one write.
async fn copy_frames<R, W>(from: &mut R, to: &mut W) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = bytes::BytesMut::with_capacity(64 << 10);
    loop {
        while let Some(len) = frame_len(&buf) {
            to.write_all(&buf.split_to(len)).await?;
            to.flush().await?;
        }
        if buf.len() > MAX_HELD_FRAME {
            to.write_all(&buf.split()).await?;
            to.flush().await?;
        }
        if from.read_buf(&mut buf).await? == 0 {
            to.write_all(&buf).await?;
            return to.flush().await;
        }
    }
}

/// The length of the WebSocket frame at the start of `b`, header included, once all of it is
/// there (RFC 6455 §5.2).
fn frame_len(b: &[u8]) -> Option<usize> {
    let first = *b.get(1)?;
    let (mut header, len): (usize, usize) = match first & 0x7f {
        126 => (
            4,
            u16::from_be_bytes(b.get(2..4)?.try_into().ok()?) as usize,
        ),
        127 => (
            10,
            u64::from_be_bytes(b.get(2..10)?.try_into().ok()?) as usize,
        ),
        n => (2, n as usize),
    };
    if first & 0x80 != 0 {
        header += 4;
    }
    let total = header.checked_add(len)?;
    (b.len() >= total).then_some(total)
}

/// An empty body.
pub fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrades_are_recognised_by_both_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, "websocket".parse().unwrap());
        assert!(!is_upgrade(&h));
        h.insert(header::CONNECTION, "keep-alive, Upgrade".parse().unwrap());
        assert!(is_upgrade(&h));
    }

    #[test]
    fn websocket_frames_are_measured_once_complete() {
        assert_eq!(frame_len(&[0x82]), None);
        assert_eq!(frame_len(&[0x82, 0x02, 1]), None);
        assert_eq!(frame_len(&[0x82, 0x02, 1, 2, 9]), Some(4));
        let mut long = vec![0x82, 126, 0x01, 0x00];
        long.extend(vec![0u8; 256]);
        assert_eq!(frame_len(&long), Some(260));
        // A masked (client) frame carries 4 more bytes.
        assert_eq!(frame_len(&[0x81, 0x81, 0, 0, 0, 0, b'x']), Some(7));
    }

    #[test]
    fn credentials_are_not_forwarded() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer x".parse().unwrap());
        h.insert("impersonate-user", "bob".parse().unwrap());
        h.append(
            "x-stream-protocol-version",
            "v4.channel.k8s.io".parse().unwrap(),
        );
        h.append(
            "x-stream-protocol-version",
            "v3.channel.k8s.io".parse().unwrap(),
        );
        let f = forwarded_headers(&h);
        assert_eq!(f.len(), 2);
        assert!(f.get(header::AUTHORIZATION).is_none());
    }
}
