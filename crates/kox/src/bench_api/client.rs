//! A small HTTPS client for the benchmarks: rustls (ring) with the admin client certificate from
//! the server's kubeconfig, HTTP/2 or HTTP/1.1 keep-alive connections, and streamed bodies.
//!
//! Deliberately not `kube::Client`: the benchmarks must spend as little CPU as possible on the
//! client side (they share two cores with the server), so they send prebuilt bodies and read
//! responses as bytes.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use base64::Engine;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;

/// Which HTTP version a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http2,
    Http1,
}

/// What it takes to open connections to one server: its address and the TLS configurations.
#[derive(Clone)]
pub struct Credentials {
    pub addr: SocketAddr,
    h2: Arc<rustls::ClientConfig>,
    h1: Arc<rustls::ClientConfig>,
}

/// One base64 field of a kubeconfig (`client-key-data: …`), decoded.
fn kubeconfig_field(text: &str, key: &str) -> Result<Vec<u8>> {
    let value = text
        .lines()
        .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix(':'))
        .with_context(|| format!("the kubeconfig has no {key}"))?;
    base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .with_context(|| format!("decoding {key}"))
}

impl Credentials {
    /// Reads the CA and the client certificate of the admin kubeconfig the server wrote.
    pub fn from_kubeconfig(path: &Path, addr: SocketAddr) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let ca = kubeconfig_field(&text, "certificate-authority-data")?;
        let cert = kubeconfig_field(&text, "client-certificate-data")?;
        let key = kubeconfig_field(&text, "client-key-data")?;

        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut ca.as_slice()) {
            roots.add(c?)?;
        }
        let certs: Vec<_> =
            rustls_pemfile::certs(&mut cert.as_slice()).collect::<Result<_, _>>()?;
        let key = rustls_pemfile::private_key(&mut key.as_slice())?
            .context("the kubeconfig's client key is empty")?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = |alpn: &[u8]| -> Result<Arc<rustls::ClientConfig>> {
            let mut c = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots.clone())
                .with_client_auth_cert(certs.clone(), key.clone_key())?;
            c.alpn_protocols = vec![alpn.to_vec()];
            Ok(Arc::new(c))
        };
        Ok(Self {
            addr,
            h2: config(b"h2")?,
            h1: config(b"http/1.1")?,
        })
    }

    /// Opens one TLS connection; its driver runs on a spawned task.
    pub async fn connect(&self, protocol: Protocol) -> Result<Conn> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let config = match protocol {
            Protocol::Http2 => self.h2.clone(),
            Protocol::Http1 => self.h1.clone(),
        };
        let name = ServerName::IpAddress(self.addr.ip().into());
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        let io = TokioIo::new(tls);
        let send = match protocol {
            Protocol::Http2 => {
                // Windows like client-go's: large enough that a 10k-object list is not throttled
                // by flow control on a loopback connection.
                let (send, conn) = http2::Builder::new(TokioExecutor::new())
                    .initial_stream_window_size(4 << 20)
                    .initial_connection_window_size(64 << 20)
                    .max_concurrent_reset_streams(100_000)
                    .handshake(io)
                    .await?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Sender::H2(send)
            }
            Protocol::Http1 => {
                let (send, conn) = http1::handshake(io).await?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Sender::H1(Arc::new(tokio::sync::Mutex::new(send)))
            }
        };
        Ok(Conn {
            send,
            authority: self.addr.to_string().into(),
        })
    }

    /// Opens `n` connections.
    pub async fn connect_many(&self, protocol: Protocol, n: usize) -> Result<Vec<Conn>> {
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n.max(1) {
            conns.push(self.connect(protocol).await?);
        }
        Ok(conns)
    }
}

#[derive(Clone)]
enum Sender {
    H2(http2::SendRequest<Full<Bytes>>),
    /// An HTTP/1.1 connection carries one request at a time; clones take turns.
    H1(Arc<tokio::sync::Mutex<http1::SendRequest<Full<Bytes>>>>),
}

/// A connection to the API server. Clones share it: HTTP/2 multiplexes their requests as
/// streams, HTTP/1.1 serializes them.
#[derive(Clone)]
pub struct Conn {
    send: Sender,
    authority: Arc<str>,
}

impl Conn {
    /// A request for `path` (with its query), JSON in and out.
    pub fn request(&self, method: Method, path: &str, body: Option<Bytes>) -> Request<Full<Bytes>> {
        let builder = match &self.send {
            Sender::H2(_) => Request::builder().uri(format!("https://{}{path}", self.authority)),
            Sender::H1(_) => Request::builder()
                .uri(path)
                .header(header::HOST, &*self.authority),
        };
        let builder = builder
            .method(method)
            .header(header::ACCEPT, "application/json");
        let req = match body {
            Some(b) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(b)),
            None => builder.body(Full::new(Bytes::new())),
        };
        req.expect("a request built from a valid path")
    }

    /// Sends a request; the response's body streams.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Result<Response<Incoming>> {
        Ok(match &self.send {
            Sender::H2(s) => {
                let mut s = s.clone();
                s.ready().await?;
                s.send_request(req).await?
            }
            Sender::H1(s) => {
                let mut s = s.lock().await;
                s.ready().await?;
                s.send_request(req).await?
            }
        })
    }

    /// Sends a request and reads the whole response.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes)> {
        let resp = self.send(self.request(method, path, body)).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// `GET path`, failing unless the answer is 200.
    pub async fn get_ok(&self, path: &str) -> Result<Bytes> {
        let (status, body) = self.call(Method::GET, path, None).await?;
        if status != StatusCode::OK {
            bail!(
                "GET {path}: {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(500)])
            );
        }
        Ok(body)
    }
}

/// The value of the first `"resourceVersion":"…"` in `json`, without parsing the document.
///
/// In a watch line (`{"type":…,"object":{…,"metadata":{…}}}`) and in a create response the first
/// occurrence is the object's own: no field of a pod or a ConfigMap before `metadata` has one.
pub fn resource_version(json: &[u8]) -> Option<u64> {
    const BEFORE: &[u8] = b"\"resource";
    const AFTER: &[u8] = b"ersion\":\"";
    // The rare capital `V` is the anchor: skipping to it is much cheaper than matching the
    // whole needle at every byte.
    let mut from = 0;
    loop {
        let v = from + find_byte(&json[from..], b'V')?;
        from = v + 1;
        if v < BEFORE.len() || &json[v - BEFORE.len()..v] != BEFORE {
            continue;
        }
        let Some(digits) = json[from..].strip_prefix(AFTER) else {
            continue;
        };
        let end = digits.iter().position(|b| !b.is_ascii_digit())?;
        return std::str::from_utf8(&digits[..end]).ok()?.parse().ok();
    }
}

/// The index of the first `needle` in `hay`, eight bytes at a time.
pub fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let pattern = ONES * needle as u64;
    let mut chunks = hay.chunks_exact(8);
    for (i, chunk) in chunks.by_ref().enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ pattern;
        // Non-zero exactly when some byte of `x` is zero; the lowest flagged byte is the first
        // zero byte (false positives can only sit above a true one).
        let found = x.wrapping_sub(ONES) & !x & HIGHS;
        if found != 0 {
            return Some(i * 8 + (found.trailing_zeros() / 8) as usize);
        }
    }
    let tail = chunks.remainder();
    tail.iter()
        .position(|&b| b == needle)
        .map(|p| hay.len() - tail.len() + p)
}

/// Percent-encodes a query value (a continue token, a selector).
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_version_is_read_from_the_first_metadata() {
        let line = br#"{"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"a","resourceVersion":"1234","uid":"x"}}}"#;
        assert_eq!(resource_version(line), Some(1234));
        assert_eq!(resource_version(b"{\"metadata\":{}}"), None);
        let decoy = br#"{"kind":"Pod","image":"Vx","metadata":{"resourceVersion":"7"}}"#;
        assert_eq!(resource_version(decoy), Some(7));
    }

    #[test]
    fn find_byte_finds_the_first_occurrence() {
        let hay: Vec<u8> = (0..40u8)
            .map(|i| if i % 13 == 12 { b'\n' } else { b'a' })
            .collect();
        assert_eq!(find_byte(&hay, b'\n'), Some(12));
        assert_eq!(find_byte(&hay[13..], b'\n'), Some(12));
        assert_eq!(find_byte(&hay[..12], b'\n'), None);
        assert_eq!(find_byte(b"abc\n", b'\n'), Some(3));
        assert_eq!(find_byte(b"\x80\x0a", b'\n'), Some(1));
        for n in 0..20 {
            let mut v = vec![0xffu8; 20];
            v[n] = b'\n';
            assert_eq!(find_byte(&v, b'\n'), Some(n));
        }
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(query_escape("half=a"), "half%3Da");
        assert_eq!(query_escape("ab+/="), "ab%2B%2F%3D");
    }
}
