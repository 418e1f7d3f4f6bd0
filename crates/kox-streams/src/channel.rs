//! The WebSocket channel protocols of Kubernetes remote command (exec/attach).
//!
//! Every message carries one channel's bytes: in the binary protocols the first byte is the
//! channel number, in the base64 ones (text messages) the first character is the channel as an
//! ASCII digit and the rest is base64. `v5.channel.k8s.io` adds the close signal: a binary
//! message on channel 255 whose one-byte payload names the channel whose sender is done (the
//! client closes channel 0 when its stdin reaches EOF).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use tokio_tungstenite::tungstenite::Message;

/// Channel numbers.
pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
/// Carries the final `metav1.Status` (v4, v5) or error text (older protocols).
pub const ERROR: u8 = 3;
/// Terminal sizes as JSON `{"Width":W,"Height":H}`.
pub const RESIZE: u8 = 4;
/// The v5 close signal's channel.
pub const CLOSE: u8 = 255;

/// A remote-command WebSocket subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `channel.k8s.io`
    Channel,
    /// `base64.channel.k8s.io`
    Base64Channel,
    /// `v4.channel.k8s.io`: the error channel carries a JSON `metav1.Status`.
    V4,
    /// `v4.base64.channel.k8s.io`
    V4Base64,
    /// `v5.channel.k8s.io`: v4 plus the close signal.
    V5,
}

impl Protocol {
    /// All protocols, newest first (the preference of a server).
    pub const ALL: [Protocol; 5] = [
        Protocol::V5,
        Protocol::V4,
        Protocol::V4Base64,
        Protocol::Channel,
        Protocol::Base64Channel,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Channel => "channel.k8s.io",
            Protocol::Base64Channel => "base64.channel.k8s.io",
            Protocol::V4 => "v4.channel.k8s.io",
            Protocol::V4Base64 => "v4.base64.channel.k8s.io",
            Protocol::V5 => "v5.channel.k8s.io",
        }
    }

    pub fn from_name(name: &str) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether messages are text with base64 payloads.
    pub fn is_base64(self) -> bool {
        matches!(self, Protocol::Base64Channel | Protocol::V4Base64)
    }

    /// Whether the close signal (channel 255) exists.
    pub fn supports_close(self) -> bool {
        self == Protocol::V5
    }

    /// Whether the error channel carries a JSON `metav1.Status` rather than plain text.
    pub fn status_errors(self) -> bool {
        matches!(self, Protocol::V4 | Protocol::V4Base64 | Protocol::V5)
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One decoded channel message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelMessage {
    Data {
        channel: u8,
        data: Bytes,
    },
    /// v5: the sender of `channel` is done.
    Close {
        channel: u8,
    },
}

/// A message that does not follow the negotiated protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("invalid channel byte {0}")]
    InvalidChannel(u8),
    #[error("invalid base64 payload")]
    InvalidBase64,
    #[error("close signal must name exactly one channel")]
    InvalidClose,
}

/// Encodes `data` for `channel` in the form of `protocol`.
pub fn encode_data(protocol: Protocol, channel: u8, data: &[u8]) -> Message {
    if protocol.is_base64() {
        let mut text = String::with_capacity(1 + data.len().div_ceil(3) * 4);
        text.push(char::from(b'0' + channel));
        STANDARD.encode_string(data, &mut text);
        Message::Text(text.into())
    } else {
        let mut v = Vec::with_capacity(1 + data.len());
        v.push(channel);
        v.extend_from_slice(data);
        Message::Binary(v.into())
    }
}

/// Encodes the v5 close signal for `channel`; `None` for protocols without it.
pub fn encode_close(protocol: Protocol, channel: u8) -> Option<Message> {
    protocol
        .supports_close()
        .then(|| Message::Binary(vec![CLOSE, channel].into()))
}

/// Encodes a [`ChannelMessage`]; a close signal on a protocol without one yields `None`.
pub fn encode(protocol: Protocol, msg: &ChannelMessage) -> Option<Message> {
    match msg {
        ChannelMessage::Data { channel, data } => Some(encode_data(protocol, *channel, data)),
        ChannelMessage::Close { channel } => encode_close(protocol, *channel),
    }
}

/// Decodes a data message. `Ok(None)` for what carries no channel data: control messages
/// (ping, pong, close) and empty messages.
pub fn decode(protocol: Protocol, msg: &Message) -> Result<Option<ChannelMessage>, ChannelError> {
    // Text and binary messages are read alike, as upstream's wsstream receives either into
    // bytes (the Python client sends binary-protocol data as text messages).
    let bytes: Bytes = match msg {
        Message::Binary(b) => b.clone(),
        Message::Text(t) => Bytes::copy_from_slice(t.as_bytes()),
        _ => return Ok(None),
    };
    let Some(&first) = bytes.first() else {
        return Ok(None);
    };
    if protocol.is_base64() {
        if !first.is_ascii_digit() {
            return Err(ChannelError::InvalidChannel(first));
        }
        let data = STANDARD
            .decode(&bytes[1..])
            .map_err(|_| ChannelError::InvalidBase64)?;
        return Ok(Some(ChannelMessage::Data {
            channel: first - b'0',
            data: data.into(),
        }));
    }
    if protocol.supports_close() && first == CLOSE {
        if bytes.len() != 2 {
            return Err(ChannelError::InvalidClose);
        }
        return Ok(Some(ChannelMessage::Close { channel: bytes[1] }));
    }
    Ok(Some(ChannelMessage::Data {
        channel: first,
        data: bytes.slice(1..),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Protocol::ALL {
            assert_eq!(Protocol::from_name(p.name()), Some(p));
        }
        assert_eq!(Protocol::from_name("v6.channel.k8s.io"), None);
        assert!(Protocol::V5.supports_close());
        assert!(!Protocol::V4.supports_close());
        assert!(Protocol::V4Base64.is_base64() && Protocol::Base64Channel.is_base64());
    }

    #[test]
    fn binary_framing() {
        for p in [Protocol::Channel, Protocol::V4, Protocol::V5] {
            let m = encode_data(p, STDOUT, b"hi");
            assert_eq!(m, Message::Binary(Bytes::from_static(&[1, b'h', b'i'])));
            assert_eq!(
                decode(p, &m).unwrap(),
                Some(ChannelMessage::Data {
                    channel: STDOUT,
                    data: Bytes::from_static(b"hi")
                })
            );
            // A text message is read as its bytes, as upstream reads it.
            assert_eq!(
                decode(p, &Message::Text("\u{0}hi".into())).unwrap(),
                Some(ChannelMessage::Data {
                    channel: STDIN,
                    data: Bytes::from_static(b"hi")
                })
            );
        }
        // An empty message on a channel (the "connection is ready" signal) has no data.
        assert_eq!(
            decode(Protocol::V5, &encode_data(Protocol::V5, STDOUT, b"")).unwrap(),
            Some(ChannelMessage::Data {
                channel: STDOUT,
                data: Bytes::new()
            })
        );
        assert_eq!(
            decode(Protocol::V5, &Message::Binary(Bytes::new())).unwrap(),
            None
        );
    }

    #[test]
    fn base64_framing() {
        for p in [Protocol::Base64Channel, Protocol::V4Base64] {
            let m = encode_data(p, STDERR, b"hi");
            assert_eq!(m, Message::Text("2aGk=".into()));
            assert_eq!(
                decode(p, &m).unwrap(),
                Some(ChannelMessage::Data {
                    channel: STDERR,
                    data: Bytes::from_static(b"hi")
                })
            );
            assert_eq!(
                decode(p, &Message::Text("0".into())).unwrap(),
                Some(ChannelMessage::Data {
                    channel: STDIN,
                    data: Bytes::new()
                })
            );
            assert!(decode(p, &Message::Text("x".into())).is_err());
            assert!(decode(p, &Message::Text("0***".into())).is_err());
            assert!(decode(p, &Message::Binary(Bytes::from_static(&[0]))).is_err());
        }
    }

    #[test]
    fn v5_close_signal() {
        let m = encode_close(Protocol::V5, STDIN).unwrap();
        assert_eq!(m, Message::Binary(Bytes::from_static(&[255, 0])));
        assert_eq!(
            decode(Protocol::V5, &m).unwrap(),
            Some(ChannelMessage::Close { channel: STDIN })
        );
        assert_eq!(
            decode(
                Protocol::V5,
                &Message::Binary(Bytes::from_static(&[255, 0, 1]))
            ),
            Err(ChannelError::InvalidClose)
        );
        // Before v5, 255 is just a channel number.
        assert_eq!(encode_close(Protocol::V4, STDIN), None);
        assert_eq!(
            decode(Protocol::V4, &m).unwrap(),
            Some(ChannelMessage::Data {
                channel: 255,
                data: Bytes::from_static(&[0])
            })
        );
    }

    #[test]
    fn control_messages_carry_no_data() {
        assert_eq!(
            decode(Protocol::V5, &Message::Ping(Bytes::new())).unwrap(),
            None
        );
        assert_eq!(decode(Protocol::V5, &Message::Close(None)).unwrap(), None);
    }
}
