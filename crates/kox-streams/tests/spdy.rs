use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue};
use kox_streams::spdy::frame::rst;
use kox_streams::spdy::{
    Config, Connection, Frame, FrameDecoder, FrameEncoder, HEADER_STREAM_TYPE, Role, Setting,
    headers,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn hdrs(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        h.append(*n, HeaderValue::from_str(v).unwrap());
    }
    h
}

fn all_frames() -> Vec<Frame> {
    vec![
        Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 3,
            slot: 0,
            fin: false,
            unidirectional: true,
            headers: hdrs(&[("streamtype", "error"), ("x-multi", "a"), ("x-multi", "b")]),
        },
        Frame::SynReply {
            stream_id: 1,
            fin: true,
            headers: hdrs(&[("status", "200")]),
        },
        Frame::RstStream {
            stream_id: 5,
            status: rst::CANCEL,
        },
        Frame::Settings {
            clear: true,
            entries: vec![
                Setting {
                    flags: 1,
                    id: 7,
                    value: 1 << 20,
                },
                Setting {
                    flags: 0,
                    id: 4,
                    value: 100,
                },
            ],
        },
        Frame::Ping { id: 7 },
        Frame::GoAway {
            last_good_stream_id: 9,
            status: 2,
        },
        Frame::Headers {
            stream_id: 3,
            fin: false,
            headers: hdrs(&[("streamtype", "stdout")]),
        },
        Frame::WindowUpdate {
            stream_id: 0,
            delta: 12345,
        },
        Frame::Data {
            stream_id: 3,
            fin: true,
            data: Bytes::from_static(b"hello"),
        },
        Frame::Data {
            stream_id: 3,
            fin: false,
            data: Bytes::new(),
        },
    ]
}

#[test]
fn every_frame_type_round_trips_through_one_compression_context() {
    let mut enc = FrameEncoder::new();
    let mut dec = FrameDecoder::new();
    let frames = all_frames();
    let mut wire = BytesMut::new();
    for f in &frames {
        enc.encode(f, &mut wire).unwrap();
    }
    // Fed one byte at a time, the decoder must wait for whole frames.
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for b in wire.iter() {
        buf.extend_from_slice(&[*b]);
        while let Some(f) = dec.decode(&mut buf).unwrap() {
            got.push(f);
        }
    }
    assert_eq!(got, frames);
    // The same header block repeated compresses better the second time (shared context).
    let h = hdrs(&[
        ("streamtype", "stdin"),
        ("port", "8080"),
        ("requestid", "0"),
    ]);
    let mut enc = FrameEncoder::new();
    let mut first = BytesMut::new();
    let mut second = BytesMut::new();
    let syn = |id| Frame::SynStream {
        stream_id: id,
        associated_to: 0,
        priority: 0,
        slot: 0,
        fin: false,
        unidirectional: false,
        headers: h.clone(),
    };
    enc.encode(&syn(1), &mut first).unwrap();
    enc.encode(&syn(3), &mut second).unwrap();
    assert!(second.len() < first.len());
    let mut dec = FrameDecoder::new();
    let mut wire = first;
    wire.extend_from_slice(&second);
    assert_eq!(dec.decode(&mut wire).unwrap(), Some(syn(1)));
    assert_eq!(dec.decode(&mut wire).unwrap(), Some(syn(3)));
}

#[test]
fn control_frame_headers_have_the_spdy3_layout() {
    let mut enc = FrameEncoder::new();
    let mut out = BytesMut::new();
    enc.encode(
        &Frame::RstStream {
            stream_id: 3,
            status: rst::CANCEL,
        },
        &mut out,
    )
    .unwrap();
    assert_eq!(
        &out[..],
        &[0x80, 0x03, 0x00, 0x03, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, 5]
    );
    out.clear();
    enc.encode(
        &Frame::Data {
            stream_id: 1,
            fin: true,
            data: Bytes::from_static(b"ab"),
        },
        &mut out,
    )
    .unwrap();
    assert_eq!(&out[..], &[0, 0, 0, 1, 1, 0, 0, 2, b'a', b'b']);
}

#[test]
fn dictionary_is_the_spdy3_one() {
    let d = headers::dictionary();
    assert_eq!(d.len(), 1423);
    // Adler-32, as a zlib stream using the dictionary announces it.
    let (mut a, mut b) = (1u32, 0u32);
    for x in d {
        a = (a + *x as u32) % 65521;
        b = (b + a) % 65521;
    }
    assert_eq!((b << 16) | a, 0xe3c6_a7c2);
}

/// Two SYN_STREAM frames whose header blocks were compressed by the reference zlib (one
/// context, level 9, the SPDY/3 dictionary, sync flush after each block).
#[test]
fn decodes_syn_streams_compressed_by_reference_zlib() {
    let wire = concat!(
        "80030001000000280000000100000000000078f9e3c6a7c202a62346703a2b294a4dcc851625aca9a080",
        "06000000ffff",
        "800300010000001900000003000000000000c22a054ccc29f9a52500000000ffff"
    );
    let bytes: Vec<u8> = (0..wire.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&wire[i..i + 2], 16).unwrap())
        .collect();
    let mut buf = BytesMut::from(&bytes[..]);
    let mut dec = FrameDecoder::new();
    for (id, ty) in [(1, "error"), (3, "stdout")] {
        match dec.decode(&mut buf).unwrap() {
            Some(Frame::SynStream {
                stream_id, headers, ..
            }) => {
                assert_eq!(stream_id, id);
                assert_eq!(headers.get(HEADER_STREAM_TYPE).unwrap(), ty);
                assert_eq!(headers.len(), 1);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(buf.is_empty());
}

fn pair(config: Config) -> (Connection, Connection) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    (
        Connection::with_config(a, Role::Client, config.clone()),
        Connection::with_config(b, Role::Server, config),
    )
}

fn st(t: &str) -> HeaderMap {
    hdrs(&[(HEADER_STREAM_TYPE, t)])
}

#[tokio::test]
async fn streams_both_ways_with_half_close() {
    let (client, server) = pair(Config::default());
    let server_task = tokio::spawn(async move {
        let (h, mut s) = server.accept_stream().await.unwrap();
        assert_eq!(h.get(HEADER_STREAM_TYPE).unwrap(), "stdin");
        assert_eq!(s.id() % 2, 1);
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        // The client's half is closed; ours is still open.
        s.write_all(&got).await.unwrap();
        s.write_all(b" back").await.unwrap();
        s.shutdown().await.unwrap();
        // A stream the server opens gets an even id.
        let mut pushed = server.open_stream(st("server")).await.unwrap();
        assert_eq!(pushed.id() % 2, 0);
        pushed.write_all(b"from server").await.unwrap();
        pushed.shutdown().await.unwrap();
        let mut rest = Vec::new();
        pushed.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        server
    });
    let mut s = client.open_stream(st("stdin")).await.unwrap();
    s.write_all(b"hello").await.unwrap();
    s.shutdown().await.unwrap();
    assert!(s.write_all(b"x").await.is_err());
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"hello back");
    let (h, mut pushed) = client.accept_stream().await.unwrap();
    assert_eq!(h.get(HEADER_STREAM_TYPE).unwrap(), "server");
    let mut got = Vec::new();
    pushed.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"from server");
    pushed.shutdown().await.unwrap();
    let server = server_task.await.unwrap();
    client.close().await;
    assert!(server.accept_stream().await.is_none());
    tokio::time::timeout(Duration::from_secs(5), server.closed())
        .await
        .unwrap();
}

fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 9)) as u8
}

async fn big_transfer_with_stalled_neighbour(config: Config) {
    const BIG: usize = 10 * 1024 * 1024;
    let (client, server) = pair(config);
    let server_task = tokio::spawn(async move {
        let (_, mut slow) = server.accept_stream().await.unwrap();
        let (_, mut fast) = server.accept_stream().await.unwrap();
        let mut got = Vec::with_capacity(BIG);
        fast.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), BIG);
        assert!(got.iter().enumerate().all(|(i, b)| *b == pattern(i)));
        // Only now read the slow stream: it must still hold everything sent to it.
        let mut slow_got = vec![0u8; 100 * 1024];
        slow.read_exact(&mut slow_got).await.unwrap();
        assert!(slow_got.iter().all(|b| *b == 7));
        (server, slow, fast)
    });
    let mut slow = client.open_stream(st("slow")).await.unwrap();
    let mut fast = client.open_stream(st("fast")).await.unwrap();
    // The slow stream is written to beyond its window from another task, which blocks (flow
    // control) while nobody reads it.
    let slow_writer = tokio::spawn(async move {
        slow.write_all(&vec![7u8; 100 * 1024]).await.unwrap();
        slow
    });
    let data: Vec<u8> = (0..BIG).map(pattern).collect();
    for chunk in data.chunks(100_000) {
        fast.write_all(chunk).await.unwrap();
    }
    fast.shutdown().await.unwrap();
    let (_server, _s, _f) = tokio::time::timeout(Duration::from_secs(60), server_task)
        .await
        .expect("the fast stream must not wait for the slow one")
        .unwrap();
    let _slow = slow_writer.await.unwrap();
}

#[tokio::test]
async fn ten_megabytes_pass_flow_control_while_another_stream_is_not_read() {
    big_transfer_with_stalled_neighbour(Config::default()).await;
}

#[tokio::test]
async fn ten_megabytes_pass_without_flow_control() {
    big_transfer_with_stalled_neighbour(Config::spdystream()).await;
}

#[tokio::test]
async fn writer_never_exceeds_the_window_of_a_reader_that_does_not_read() {
    let (client, server) = pair(Config::default());
    let mut s = client.open_stream(st("x")).await.unwrap();
    let (_, mut peer) = server.accept_stream().await.unwrap();
    let write = tokio::spawn(async move {
        s.write_all(&vec![1u8; 200 * 1024]).await.unwrap();
        s
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !write.is_finished(),
        "a 200 KiB write cannot fit a 64 KiB window"
    );
    let mut got = vec![0u8; 200 * 1024];
    peer.read_exact(&mut got).await.unwrap();
    write.await.unwrap();
}

#[tokio::test]
async fn reset_reaches_the_peer_and_fails_both_sides() {
    let (client, server) = pair(Config::default());
    let s = client.open_stream(st("x")).await.unwrap();
    let (_, mut peer) = server.accept_stream().await.unwrap();
    s.reset();
    let mut buf = [0u8; 8];
    let err = peer.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    let err = peer.write_all(b"x").await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    // Other streams go on.
    let mut s2 = client.open_stream(st("y")).await.unwrap();
    let (_, mut p2) = server.accept_stream().await.unwrap();
    s2.write_all(b"ok").await.unwrap();
    let mut two = [0u8; 2];
    p2.read_exact(&mut two).await.unwrap();
    assert_eq!(&two, b"ok");
}

#[tokio::test]
async fn dropping_an_unfinished_stream_resets_it() {
    let (client, server) = pair(Config::default());
    let s = client.open_stream(st("x")).await.unwrap();
    let (_, mut peer) = server.accept_stream().await.unwrap();
    drop(s);
    let mut buf = [0u8; 8];
    assert!(peer.read(&mut buf).await.is_err());
}

#[tokio::test]
async fn pings_are_answered_both_ways() {
    let (client, server) = pair(Config::default());
    client.ping().await.unwrap();
    client.ping().await.unwrap();
    server.ping().await.unwrap();
}

#[tokio::test]
async fn goaway_refuses_new_streams_and_closing_ends_the_peer() {
    let (client, server) = pair(Config::default());
    let mut s = client.open_stream(st("x")).await.unwrap();
    let (_, mut p) = server.accept_stream().await.unwrap();
    s.write_all(b"before").await.unwrap();
    let mut six = [0u8; 6];
    p.read_exact(&mut six).await.unwrap();
    server.close().await;
    tokio::time::timeout(Duration::from_secs(5), client.closed())
        .await
        .unwrap();
    assert!(client.open_stream(st("y")).await.is_err());
    let mut buf = [0u8; 1];
    assert!(s.read(&mut buf).await.is_err());
}

#[tokio::test]
async fn dropping_every_handle_closes_the_transport() {
    let (a, b) = tokio::io::duplex(1024);
    let client = Connection::new(a, Role::Client);
    let server = Connection::new(b, Role::Server);
    drop(client);
    tokio::time::timeout(Duration::from_secs(5), server.closed())
        .await
        .unwrap();
}

#[tokio::test]
async fn upgrade_refusal_carries_status_and_body() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut c, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf).await.unwrap();
        c.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 19\r\n\r\ninvalid token abcde\n",
        )
        .await
        .unwrap();
    });
    let err = kox_streams::spdy::client_upgrade(
        &format!("http://{addr}/exec/abcde"),
        "",
        &["v4.channel.k8s.io"],
    )
    .await
    .unwrap_err();
    match err {
        kox_streams::spdy::Error::Upgrade { status, body } => {
            assert_eq!(status, 404);
            assert_eq!(body, "invalid token abcde");
        }
        other => panic!("unexpected {other}"),
    }
}

#[tokio::test]
async fn upgrade_then_streams_over_tcp() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut c, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            c.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("POST /exec/tok HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("Upgrade: SPDY/3.1\r\n"));
        assert!(head.contains("X-Stream-Protocol-Version: v4.channel.k8s.io\r\n"));
        assert!(head.contains("X-Stream-Protocol-Version: v3.channel.k8s.io\r\n"));
        c.write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n").await.unwrap();
        let conn = Connection::with_config(c, Role::Server, Config::spdystream());
        let (h, mut s) = conn.accept_stream().await.unwrap();
        assert_eq!(h.get(HEADER_STREAM_TYPE).unwrap(), "stdout");
        s.write_all(b"hi").await.unwrap();
        s.shutdown().await.unwrap();
        conn.closed().await;
    });
    let (conn, proto) = kox_streams::spdy::client_upgrade(
        &addr.to_string(),
        "/exec/tok",
        &["v4.channel.k8s.io", "v3.channel.k8s.io"],
    )
    .await
    .unwrap();
    assert_eq!(proto.as_deref(), Some("v4.channel.k8s.io"));
    let mut s = conn.open_stream(st("stdout")).await.unwrap();
    let mut got = String::new();
    s.read_to_string(&mut got).await.unwrap();
    assert_eq!(got, "hi");
    conn.close().await;
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
}
