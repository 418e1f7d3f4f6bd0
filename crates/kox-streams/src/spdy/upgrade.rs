//! The client side of the HTTP/1.1 upgrade to SPDY/3.1, as Kubernetes streaming servers (the
//! kubelet, containerd's and CRI-O's CRI stream servers) expect it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::{Config, Connection, Error, Role};

/// The `Upgrade` token of SPDY/3.1.
pub const UPGRADE_SPDY_31: &str = "SPDY/3.1";
/// The header offering (request, one per protocol) and naming (response) the sub-protocol.
pub const HEADER_PROTOCOL_VERSION: &str = "X-Stream-Protocol-Version";

const MAX_RESPONSE_HEAD: usize = 64 * 1024;
const MAX_ERROR_BODY: usize = 64 * 1024;
const ERROR_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to a plain-HTTP streaming server and upgrades to SPDY/3.1 with flow control set for
/// a moby/spdystream peer ([`Config::spdystream`]).
///
/// `url_or_addr` is `http://HOST:PORT[/path]` or `HOST:PORT`. `path_and_query` is the request
/// target; when empty, the path of `url_or_addr` is used (so a CRI `Exec` URL can be passed
/// whole). Each of `protocols` is offered in its own `X-Stream-Protocol-Version` header. Returns
/// the client-role connection and the protocol the server chose, if it named one. An answer
/// other than `101` becomes [`Error::Upgrade`] with its status and body.
pub async fn client_upgrade(
    url_or_addr: &str,
    path_and_query: &str,
    protocols: &[&str],
) -> Result<(Connection, Option<String>), Error> {
    client_upgrade_with_config(url_or_addr, path_and_query, protocols, Config::spdystream()).await
}

/// [`client_upgrade`] with explicit connection settings.
pub async fn client_upgrade_with_config(
    url_or_addr: &str,
    path_and_query: &str,
    protocols: &[&str],
    config: Config,
) -> Result<(Connection, Option<String>), Error> {
    let (io, protocol) = upgrade_raw(url_or_addr, path_and_query, protocols).await?;
    Ok((Connection::with_config(io, Role::Client, config), protocol))
}

/// The upgrade of [`client_upgrade`] without starting a SPDY connection: returns the upgraded
/// transport (for relaying a tunneled SPDY connection as bytes) and the chosen protocol.
pub async fn upgrade_raw(
    url_or_addr: &str,
    path_and_query: &str,
    protocols: &[&str],
) -> Result<(Upgraded, Option<String>), Error> {
    let (authority, url_path) = split_target(url_or_addr)?;
    let target = if path_and_query.is_empty() {
        url_path
    } else {
        path_and_query.to_string()
    };
    let mut tcp = TcpStream::connect(&authority).await?;
    let _ = tcp.set_nodelay(true);
    let mut req = format!(
        "POST {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: Upgrade\r\nUpgrade: {UPGRADE_SPDY_31}\r\n"
    );
    for p in protocols {
        req.push_str(&format!("{HEADER_PROTOCOL_VERSION}: {p}\r\n"));
    }
    req.push_str("Content-Length: 0\r\n\r\n");
    tcp.write_all(req.as_bytes()).await?;

    let (head, rest) = read_head(&mut tcp).await?;
    let resp = parse_head(&head)?;
    if resp.status != 101 {
        let body = read_error_body(&mut tcp, rest, &resp).await;
        return Err(Error::Upgrade {
            status: resp.status,
            body: body.trim().to_string(),
        });
    }
    let upgrade_ok = resp
        .header("upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case(UPGRADE_SPDY_31));
    if !upgrade_ok {
        return Err(Error::Protocol(format!(
            "101 response without Upgrade: {UPGRADE_SPDY_31}"
        )));
    }
    let protocol = resp
        .header(HEADER_PROTOCOL_VERSION)
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty());
    Ok((
        Upgraded {
            prefix: rest,
            io: tcp,
        },
        protocol,
    ))
}

fn split_target(url_or_addr: &str) -> Result<(String, String), Error> {
    let bad = || Error::Protocol(format!("not an http address: {url_or_addr}"));
    let rest = if let Some(r) = url_or_addr.strip_prefix("http://") {
        r
    } else if url_or_addr.contains("://") {
        return Err(bad());
    } else {
        url_or_addr
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(bad());
    }
    let authority = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path.to_string()))
}

/// Reads up to the blank line ending the response head; returns the head and the bytes read
/// past it (already SPDY frames, or the start of an error body).
async fn read_head<R: AsyncRead + Unpin>(r: &mut R) -> Result<(Vec<u8>, Bytes), Error> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            let rest = Bytes::copy_from_slice(&buf[i + 4..]);
            buf.truncate(i + 4);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_RESPONSE_HEAD {
            return Err(Error::Protocol("upgrade response head too large".into()));
        }
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Err(Error::Protocol(
                "connection closed before the upgrade response".into(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

struct ResponseHead {
    status: u16,
    headers: Vec<(String, String)>,
}

impl ResponseHead {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn parse_head(head: &[u8]) -> Result<ResponseHead, Error> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(Error::Protocol(format!(
            "not an HTTP/1 response: {status_line:?}"
        )));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| Error::Protocol(format!("bad status line: {status_line:?}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(ResponseHead { status, headers })
}

async fn read_error_body<R: AsyncRead + Unpin>(
    r: &mut R,
    rest: Bytes,
    resp: &ResponseHead,
) -> String {
    let mut body = rest.to_vec();
    let want = resp
        .header("content-length")
        .and_then(|l| l.parse::<usize>().ok());
    let read = async {
        let mut chunk = [0u8; 4096];
        while body.len() < want.unwrap_or(MAX_ERROR_BODY).min(MAX_ERROR_BODY) {
            match r.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(ERROR_BODY_TIMEOUT, read).await;
    if let Some(w) = want {
        body.truncate(w);
    }
    let chunked = resp
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// Decodes as much of a chunked body as is present.
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = find(data, b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..i]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            break;
        };
        data = &data[i + 2..];
        if size == 0 {
            break;
        }
        let take = size.min(data.len());
        out.extend_from_slice(&data[..take]);
        data = &data[take..];
        if data.starts_with(b"\r\n") {
            data = &data[2..];
        }
    }
    out
}

/// The transport of an accepted upgrade: the TCP connection, plus whatever the server sent
/// right behind its 101 (already protocol bytes).
pub struct Upgraded {
    prefix: Bytes,
    io: TcpStream,
}

impl std::fmt::Debug for Upgraded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgraded")
            .field("peer", &self.io.peer_addr().ok())
            .finish_non_exhaustive()
    }
}

impl AsyncRead for Upgraded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            split_target("http://127.0.0.1:4000/exec/abc?x=1").unwrap(),
            ("127.0.0.1:4000".to_string(), "/exec/abc?x=1".to_string())
        );
        assert_eq!(
            split_target("127.0.0.1:4000").unwrap(),
            ("127.0.0.1:4000".to_string(), "/".to_string())
        );
        assert_eq!(
            split_target("http://localhost/x").unwrap(),
            ("localhost:80".to_string(), "/x".to_string())
        );
        assert!(split_target("https://127.0.0.1:1/").is_err());
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            dechunk(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            b"hello world"
        );
    }
}
