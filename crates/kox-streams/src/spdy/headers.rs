//! SPDY/3 header blocks: the name/value block layout and its zlib compression with the
//! protocol's preset dictionary.
//!
//! Each direction of a connection keeps one compression context for its whole life: every
//! header block is compressed as a continuation of the previous ones and ends with a sync flush,
//! so that the receiver can decode it from the bytes of its own frame.

use std::sync::OnceLock;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::Error;

/// The header values of one name are joined with NUL in a header block.
const VALUE_SEPARATOR: u8 = 0;

/// A header block that decompresses to more than this is refused: it protects the receiver from
/// a small frame that expands into a huge allocation.
const MAX_DECOMPRESSED_BLOCK: usize = 1 << 20;

/// The words the SPDY/3 dictionary lists, each preceded by its 32-bit length.
const DICTIONARY_WORDS: &[&str] = &[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// The raw tail of the SPDY/3 dictionary, after the length-prefixed words.
const DICTIONARY_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

/// The SPDY/3 zlib dictionary (1423 bytes).
pub fn dictionary() -> &'static [u8] {
    static DICT: OnceLock<Vec<u8>> = OnceLock::new();
    DICT.get_or_init(|| {
        let mut d = Vec::with_capacity(1423);
        for w in DICTIONARY_WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(DICTIONARY_TAIL.as_bytes());
        d
    })
}

/// Lays out a header map as an uncompressed SPDY/3 name/value block. Names are lowercase
/// (peers built on Go's SPDY framer reject others); several values of one name are joined
/// with NUL.
pub fn encode_block(headers: &HeaderMap) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(headers.keys_len() as u32).to_be_bytes());
    for name in headers.keys() {
        let name_bytes = name.as_str().as_bytes();
        out.extend_from_slice(&(name_bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(name_bytes);
        let mut value = Vec::new();
        for (i, v) in headers.get_all(name).iter().enumerate() {
            if i > 0 {
                value.push(VALUE_SEPARATOR);
            }
            value.extend_from_slice(v.as_bytes());
        }
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(&value);
    }
    out
}

fn take<'a>(block: &mut &'a [u8], n: usize) -> Result<&'a [u8], Error> {
    if block.len() < n {
        return Err(Error::Protocol("truncated header block".into()));
    }
    let (head, rest) = block.split_at(n);
    *block = rest;
    Ok(head)
}

fn take_u32(block: &mut &[u8]) -> Result<u32, Error> {
    let b = take(block, 4)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Parses an uncompressed name/value block. Names are lowercased; a NUL-joined value becomes
/// several values of the name. Pairs that are not valid HTTP headers are skipped rather than
/// failing the whole connection.
pub fn decode_block(mut block: &[u8]) -> Result<HeaderMap, Error> {
    let count = take_u32(&mut block)?;
    let mut headers = HeaderMap::new();
    for _ in 0..count {
        let name_len = take_u32(&mut block)? as usize;
        let name = take(&mut block, name_len)?;
        let value_len = take_u32(&mut block)? as usize;
        let value = take(&mut block, value_len)?;
        let Ok(name) = HeaderName::from_bytes(&name.to_ascii_lowercase()) else {
            tracing::debug!(name = %String::from_utf8_lossy(name), "skipping invalid SPDY header name");
            continue;
        };
        for part in value.split(|b| *b == VALUE_SEPARATOR) {
            match HeaderValue::from_bytes(part) {
                Ok(v) => {
                    headers.append(name.clone(), v);
                }
                Err(_) => tracing::debug!(%name, "skipping invalid SPDY header value"),
            }
        }
    }
    Ok(headers)
}

/// The compressing side of one direction of a connection.
pub struct HeaderCompressor {
    z: Compress,
}

impl Default for HeaderCompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderCompressor {
    pub fn new() -> Self {
        let mut z = Compress::new(Compression::best(), true);
        z.set_dictionary(dictionary())
            .expect("setting a dictionary on a fresh zlib stream succeeds");
        HeaderCompressor { z }
    }

    /// Compresses one header block, ending with a sync flush.
    pub fn compress(&mut self, headers: &HeaderMap) -> Result<Vec<u8>, Error> {
        let input = encode_block(headers);
        let mut out = Vec::with_capacity(input.len() / 2 + 64);
        let mut consumed = 0usize;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            let before_in = self.z.total_in();
            self.z
                .compress_vec(&input[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| Error::Compression(e.to_string()))?;
            consumed += (self.z.total_in() - before_in) as usize;
            // The flush is complete once all input is in and zlib left spare output room.
            if consumed == input.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// The decompressing side of one direction of a connection.
pub struct HeaderDecompressor {
    z: Decompress,
}

impl Default for HeaderDecompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderDecompressor {
    pub fn new() -> Self {
        HeaderDecompressor {
            z: Decompress::new(true),
        }
    }

    /// Decompresses the header block carried by one frame.
    pub fn decompress(&mut self, compressed: &[u8]) -> Result<HeaderMap, Error> {
        let mut out: Vec<u8> = Vec::with_capacity(compressed.len() * 4 + 64);
        let mut consumed = 0usize;
        loop {
            if out.capacity() - out.len() < 64 {
                if out.len() >= MAX_DECOMPRESSED_BLOCK {
                    return Err(Error::Compression("header block too large".into()));
                }
                out.reserve(out.capacity().max(256));
            }
            let before_in = self.z.total_in();
            let before_out = out.len();
            let res =
                self.z
                    .decompress_vec(&compressed[consumed..], &mut out, FlushDecompress::Sync);
            consumed += (self.z.total_in() - before_in) as usize;
            match res {
                Ok(Status::StreamEnd) => {
                    return Err(Error::Compression("header stream ended".into()));
                }
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z
                        .set_dictionary(dictionary())
                        .map_err(|e| Error::Compression(e.to_string()))?;
                    continue;
                }
                Err(e) => return Err(Error::Compression(e.to_string())),
            }
            if consumed == compressed.len() && out.len() < out.capacity() {
                break;
            }
            if consumed == compressed.len() && out.len() == before_out {
                break;
            }
        }
        decode_block(&out)
    }
}
