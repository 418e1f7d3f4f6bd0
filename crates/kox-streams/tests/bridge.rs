use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use kox_streams::channel::{self, ChannelMessage, Protocol};
use kox_streams::portforward::tunnel_websocket_to_spdy;
use kox_streams::remotecommand::{BridgeOptions, BridgeOutcome, bridge_websocket_to_spdy};
use kox_streams::spdy::{Config, Connection, HEADER_STREAM_TYPE, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;

const NON_ZERO: &str = r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;

async fn ws_pair() -> (WebSocketStream<DuplexStream>, WebSocketStream<DuplexStream>) {
    let (a, b) = tokio::io::duplex(256 * 1024);
    let server = WebSocketStream::from_raw_socket(a, WsRole::Server, None).await;
    let client = WebSocketStream::from_raw_socket(b, WsRole::Client, None).await;
    (server, client)
}

fn spdy_pair() -> (Connection, Connection) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    (
        Connection::with_config(a, Role::Client, Config::spdystream()),
        Connection::with_config(b, Role::Server, Config::spdystream()),
    )
}

/// A stand-in for the runtime's stream server: stdin uppercased to stdout, a line on stderr,
/// and on stdin's FIN a non-zero exit status.
async fn fake_runtime(conn: Connection) -> (Vec<String>, bool) {
    let mut kinds = Vec::new();
    let mut streams = Vec::new();
    for _ in 0..4 {
        let (h, s) = conn.accept_stream().await.unwrap();
        kinds.push(
            h.get(HEADER_STREAM_TYPE)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string(),
        );
        streams.push(s);
    }
    let mut error = streams.remove(0);
    let mut stdin = streams.remove(0);
    let mut stdout = streams.remove(0);
    let mut stderr = streams.remove(0);
    let mut buf = [0u8; 1024];
    loop {
        let n = stdin.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        stdout
            .write_all(&buf[..n].to_ascii_uppercase())
            .await
            .unwrap();
    }
    let saw_fin = true;
    stderr.write_all(b"some error text").await.unwrap();
    stdout.shutdown().await.unwrap();
    stderr.shutdown().await.unwrap();
    error.write_all(NON_ZERO.as_bytes()).await.unwrap();
    error.shutdown().await.unwrap();
    stdin.shutdown().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), conn.closed())
        .await
        .expect("the bridge closes the SPDY connection");
    (kinds, saw_fin)
}

#[tokio::test]
async fn v5_exec_session_end_to_end() {
    let (ws_server, mut ws_client) = ws_pair().await;
    let (spdy_client, spdy_server) = spdy_pair();
    let runtime = tokio::spawn(fake_runtime(spdy_server));
    let mut opts = BridgeOptions::new(Protocol::V5);
    opts.stdin = true;
    let bridge = tokio::spawn(bridge_websocket_to_spdy(ws_server, spdy_client, opts));

    let p = Protocol::V5;
    ws_client
        .send(channel::encode_data(p, channel::STDIN, b"hello "))
        .await
        .unwrap();
    ws_client
        .send(channel::encode_data(p, channel::STDIN, b"world"))
        .await
        .unwrap();
    ws_client
        .send(channel::encode_close(p, channel::STDIN).unwrap())
        .await
        .unwrap();

    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut status = None;
    let mut closed = false;
    let mut first = None;
    while let Some(msg) = ws_client.next().await {
        let msg = msg.unwrap();
        if let Message::Close(frame) = &msg {
            assert_eq!(
                frame.as_ref().unwrap().code,
                tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal
            );
            assert!(status.is_some(), "the status comes before the close");
            closed = true;
            continue;
        }
        match channel::decode(p, &msg).unwrap() {
            Some(ChannelMessage::Data { channel, data }) => {
                first.get_or_insert((channel, data.len()));
                match channel {
                    channel::STDOUT => stdout.extend_from_slice(&data),
                    channel::STDERR => stderr.extend_from_slice(&data),
                    channel::ERROR => status = Some(data),
                    other => panic!("unexpected channel {other}"),
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(closed);
    assert_eq!(first, Some((channel::STDOUT, 0)), "ready signal first");
    assert_eq!(String::from_utf8(stdout).unwrap(), "HELLO WORLD");
    assert_eq!(String::from_utf8(stderr).unwrap(), "some error text");
    let status: serde_json::Value = serde_json::from_slice(&status.unwrap()).unwrap();
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "3");

    let outcome = tokio::time::timeout(Duration::from_secs(10), bridge)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(outcome, BridgeOutcome::Completed { .. }));
    let (kinds, saw_fin) = runtime.await.unwrap();
    assert_eq!(kinds, ["error", "stdin", "stdout", "stderr"]);
    assert!(saw_fin);
}

#[tokio::test]
async fn v4_tty_session_with_resize_and_client_going_away() {
    let (ws_server, mut ws_client) = ws_pair().await;
    let (spdy_client, spdy_server) = spdy_pair();
    let runtime = tokio::spawn(async move {
        let mut kinds = Vec::new();
        let mut streams = Vec::new();
        for _ in 0..4 {
            let (h, s) = spdy_server.accept_stream().await.unwrap();
            kinds.push(
                h.get(HEADER_STREAM_TYPE)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string(),
            );
            streams.push(s);
        }
        assert_eq!(kinds, ["error", "stdin", "stdout", "resize"]);
        let mut resize = streams.pop().unwrap();
        let mut stdout = streams.pop().unwrap();
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\n") {
            resize.read_exact(&mut b).await.unwrap();
            line.push(b[0]);
        }
        stdout.write_all(&line).await.unwrap();
        // The client leaving resets the streams and closes the connection.
        let mut rest = Vec::new();
        assert!(resize.read_to_end(&mut rest).await.is_err());
        tokio::time::timeout(Duration::from_secs(10), spdy_server.closed())
            .await
            .unwrap();
    });
    let mut opts = BridgeOptions::new(Protocol::V4);
    opts.stdin = true;
    opts.tty = true;
    let bridge = tokio::spawn(bridge_websocket_to_spdy(ws_server, spdy_client, opts));
    let p = Protocol::V4;
    ws_client
        .send(channel::encode_data(
            p,
            channel::RESIZE,
            br#"{"Width":120,"#,
        ))
        .await
        .unwrap();
    ws_client
        .send(channel::encode_data(p, channel::RESIZE, br#""Height":40}"#))
        .await
        .unwrap();
    let mut out = Vec::new();
    while !out.ends_with(b"\n") {
        let msg = ws_client.next().await.unwrap().unwrap();
        if let Some(ChannelMessage::Data { channel, data }) = channel::decode(p, &msg).unwrap() {
            assert_eq!(channel, channel::STDOUT);
            out.extend_from_slice(&data);
        }
    }
    assert_eq!(out, b"{\"Width\":120,\"Height\":40}\n");
    ws_client.close(None).await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), bridge)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(outcome, BridgeOutcome::ClientGone);
    runtime.await.unwrap();
}

#[tokio::test]
async fn empty_error_stream_means_success() {
    let (ws_server, mut ws_client) = ws_pair().await;
    let (spdy_client, spdy_server) = spdy_pair();
    let runtime = tokio::spawn(async move {
        let (_, mut error) = spdy_server.accept_stream().await.unwrap();
        let (_, mut stdout) = spdy_server.accept_stream().await.unwrap();
        stdout.write_all(b"done").await.unwrap();
        stdout.shutdown().await.unwrap();
        error.shutdown().await.unwrap();
        spdy_server.closed().await;
    });
    let mut opts = BridgeOptions::new(Protocol::V5);
    opts.stderr = false;
    let bridge = tokio::spawn(bridge_websocket_to_spdy(ws_server, spdy_client, opts));
    let mut status = None;
    while let Some(msg) = ws_client.next().await {
        if let Ok(Some(ChannelMessage::Data {
            channel: channel::ERROR,
            data,
        })) = channel::decode(Protocol::V5, &msg.unwrap())
        {
            status = Some(data);
        }
    }
    assert_eq!(
        status,
        Some(Bytes::from_static(br#"{"metadata":{},"status":"Success"}"#))
    );
    bridge.await.unwrap().unwrap();
    runtime.await.unwrap();
}

#[tokio::test]
async fn port_forward_tunnel_relays_a_megabyte_each_way() {
    const SIZE: usize = 1024 * 1024;
    let (ws_server, ws_client) = ws_pair().await;
    let (upstream_here, mut upstream_there) = tokio::io::duplex(64 * 1024);
    // The upstream echoes everything back, then closes when the client is done.
    let upstream = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        let mut total = 0;
        loop {
            let n = upstream_there.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            total += n;
            upstream_there.write_all(&buf[..n]).await.unwrap();
        }
        upstream_there.shutdown().await.unwrap();
        total
    });
    let tunnel = tokio::spawn(tunnel_websocket_to_spdy(ws_server, upstream_here));
    let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let (mut tx, mut rx) = ws_client.split();
    let sent = data.clone();
    let sender = tokio::spawn(async move {
        for chunk in sent.chunks(10_000) {
            tx.send(Message::Binary(Bytes::copy_from_slice(chunk)))
                .await
                .unwrap();
        }
        tx
    });
    let mut back = Vec::with_capacity(SIZE);
    while back.len() < SIZE {
        match rx.next().await.unwrap().unwrap() {
            Message::Binary(b) => back.extend_from_slice(&b),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(back == data);
    // A WebSocket close ends both directions, so the client closes once it has everything;
    // the relay passes that on as EOF upstream and closes in turn when upstream is done.
    let mut tx = sender.await.unwrap();
    tx.send(Message::Close(None)).await.unwrap();
    match rx.next().await {
        Some(Ok(Message::Close(_)) | Err(_)) | None => {}
        Some(Ok(other)) => panic!("unexpected {other:?}"),
    }
    tokio::time::timeout(Duration::from_secs(10), tunnel)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(upstream.await.unwrap(), SIZE);
}
