//! What a server needs to accept the WebSockets of exec/attach/port-forward itself.

/// The `Sec-WebSocket-Accept` value answering a `Sec-WebSocket-Key`.
pub fn websocket_accept_key(sec_websocket_key: &str) -> String {
    tokio_tungstenite::tungstenite::handshake::derive_accept_key(
        sec_websocket_key.trim().as_bytes(),
    )
}

/// Picks the subprotocol to answer from the `Sec-WebSocket-Protocol` request header values
/// (each a comma-separated list): the first one the client offers that is in `supported`, as
/// Kubernetes' servers do (client order wins).
pub fn select_subprotocol<'a, I>(header_values: I, supported: &[&str]) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    header_values
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find(|p| !p.is_empty() && supported.contains(p))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_of_rfc6455_example() {
        assert_eq!(
            websocket_accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn client_order_wins() {
        let supported = ["v4.channel.k8s.io", "v5.channel.k8s.io"];
        assert_eq!(
            select_subprotocol(
                ["v5.channel.k8s.io, v4.channel.k8s.io", "channel.k8s.io"],
                &supported
            )
            .as_deref(),
            Some("v5.channel.k8s.io")
        );
        assert_eq!(
            select_subprotocol(["base64.channel.k8s.io,v4.channel.k8s.io"], &supported).as_deref(),
            Some("v4.channel.k8s.io")
        );
        assert_eq!(select_subprotocol(["foo", ""], &supported), None);
    }
}
