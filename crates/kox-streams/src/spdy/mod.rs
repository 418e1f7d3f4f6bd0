//! SPDY/3.1 as Kubernetes uses it (the framing of moby/spdystream): frames, header-block
//! compression, a multiplexed [`Connection`] and the HTTP/1.1 upgrade that starts one.

mod conn;
pub mod frame;
pub mod headers;
mod upgrade;

pub use conn::{Config, Connection, INITIAL_WINDOW, RecvStream, Role, SendStream, Stream};
pub use frame::{Frame, FrameDecoder, FrameEncoder, Setting};
pub use upgrade::{
    HEADER_PROTOCOL_VERSION, UPGRADE_SPDY_31, Upgraded, client_upgrade, client_upgrade_with_config,
    upgrade_raw,
};

/// The header naming a Kubernetes stream's role (`error`, `stdin`, `stdout`, `stderr`,
/// `resize`; `data`/`error` for port-forward).
pub const HEADER_STREAM_TYPE: &str = "streamtype";

/// What can go wrong on a SPDY connection.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("SPDY protocol error: {0}")]
    Protocol(String),
    #[error("SPDY header compression: {0}")]
    Compression(String),
    #[error("stream reset by peer (status {0})")]
    Reset(u32),
    #[error("connection is going away")]
    GoAway,
    #[error("connection closed")]
    Closed,
    /// The server answered the upgrade request with something other than 101.
    #[error("upgrade refused with HTTP {status}: {body}")]
    Upgrade { status: u16, body: String },
}
