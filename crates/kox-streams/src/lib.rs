//! The streaming protocols behind `kubectl exec`, `attach` and `port-forward`, independent of
//! the rest of kox.
//!
//! - [`spdy`]: SPDY/3.1 as Kubernetes uses it (moby/spdystream's framing): the frame codec with
//!   zlib header compression, a multiplexed [`spdy::Connection`] in client or server role, and
//!   the HTTP/1.1 `Upgrade: SPDY/3.1` client used towards CRI stream servers (containerd,
//!   CRI-O) and kubelets.
//! - [`channel`]: the WebSocket channel protocols of remote command (`channel.k8s.io`,
//!   `base64.channel.k8s.io`, `v4.channel.k8s.io`, `v4.base64.channel.k8s.io`,
//!   `v5.channel.k8s.io`).
//! - [`remotecommand`]: a bridge from a WebSocket exec/attach client (v4/v5) to a SPDY
//!   `v4.channel.k8s.io` connection, for runtimes that do not speak v5.
//! - [`portforward`]: the `SPDY/3.1+portforward.k8s.io` WebSocket tunnel, relayed to an
//!   upgraded SPDY connection as raw bytes.
//! - [`websocket`]: the handshake helpers a server needs to accept those WebSockets.
//!
//! Invariant: on a [`spdy::Connection`] one slow stream never stalls the others. Received data
//! is filed into per-stream buffers bounded by the stream's flow-control window and the reader
//! of the transport never waits for a stream's consumer (see [`spdy::Config`] for the one
//! exception: a peer that ignores flow control, bounded by a per-stream buffer limit).

pub mod channel;
pub mod portforward;
pub mod remotecommand;
pub mod spdy;
pub mod websocket;
