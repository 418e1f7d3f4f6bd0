//! Bad input of every kind gets a Kubernetes `Status` with a 4xx code and changes nothing; no
//! input makes the server fail (a panic would drop the connection instead of answering).

mod support;

use http::{Method, Request};
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::Value;

/// Sends a raw request; returns the status code and the parsed body (JSON or `Null`).
async fn send(
    client: &kube::Client,
    method: Method,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("Content-Type", content_type)
        .body(kube::client::Body::from(body))
        .expect("request");
    let resp = client
        .send(req)
        .await
        .expect("the server answers every request");
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn assert_status(code: u16, body: &Value, what: &str) {
    assert!(
        (400..500).contains(&code),
        "{what}: expected a 4xx, got {code} {body}"
    );
    assert_eq!(body["kind"], "Status", "{what}: {body}");
    assert_eq!(body["code"], code, "{what}: {body}");
    assert_eq!(body["status"], "Failure", "{what}: {body}");
}

#[tokio::test]
async fn malformed_and_mismatched_bodies_get_a_status_and_write_nothing() {
    let s = support::start().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    let cases: Vec<(&str, Method, &str, &str, Vec<u8>)> = vec![
        (
            "malformed JSON",
            Method::POST,
            cms,
            "application/json",
            b"{\"apiVersion\": ".to_vec(),
        ),
        (
            "malformed YAML",
            Method::POST,
            cms,
            "application/yaml",
            b"a: [b\n  c: }".to_vec(),
        ),
        (
            "a JSON array",
            Method::POST,
            cms,
            "application/json",
            b"[1,2]".to_vec(),
        ),
        (
            "JSON null",
            Method::POST,
            cms,
            "application/json",
            b"null".to_vec(),
        ),
        (
            "an empty body",
            Method::POST,
            cms,
            "application/json",
            Vec::new(),
        ),
        (
            "the wrong kind",
            Method::POST,
            cms,
            "application/json",
            br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}"#.to_vec(),
        ),
        (
            "the wrong apiVersion",
            Method::POST,
            cms,
            "application/json",
            br#"{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"x"}}"#.to_vec(),
        ),
        (
            "a bad name",
            Method::POST,
            cms,
            "application/json",
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Not_A_Name"}}"#.to_vec(),
        ),
        (
            "a 300-character name",
            Method::POST,
            cms,
            "application/json",
            format!(
                r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{}"}}}}"#,
                "a".repeat(300)
            )
            .into_bytes(),
        ),
        (
            "a wrongly typed field",
            Method::POST,
            cms,
            "application/json",
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":"nope"}"#
                .to_vec(),
        ),
        (
            "an unknown content type",
            Method::POST,
            cms,
            "text/plain",
            b"hello".to_vec(),
        ),
        (
            "protobuf garbage",
            Method::POST,
            cms,
            "application/vnd.kubernetes.protobuf",
            b"k8s\0\xff\xff\xff".to_vec(),
        ),
        (
            "an unknown resource",
            Method::GET,
            "/api/v1/namespaces/default/gizmos",
            "application/json",
            Vec::new(),
        ),
        (
            "an unknown group",
            Method::GET,
            "/apis/example.com/v1/things",
            "application/json",
            Vec::new(),
        ),
        (
            "an unknown path",
            Method::GET,
            "/nope/at/all",
            "application/json",
            Vec::new(),
        ),
        (
            "a wrong method",
            Method::PUT,
            "/version",
            "application/json",
            Vec::new(),
        ),
        (
            "a wrong method on a collection",
            Method::PUT,
            cms,
            "application/json",
            b"{}".to_vec(),
        ),
        (
            "a bad label selector",
            Method::GET,
            "/api/v1/pods?labelSelector=a%20in%20(",
            "application/json",
            Vec::new(),
        ),
        (
            "a bad limit",
            Method::GET,
            "/api/v1/pods?limit=ten",
            "application/json",
            Vec::new(),
        ),
        (
            "a bad continue token",
            Method::GET,
            "/api/v1/pods?limit=1&continue=%%%",
            "application/json",
            Vec::new(),
        ),
        (
            "a bad dryRun",
            Method::POST,
            "/api/v1/namespaces/default/configmaps?dryRun=Some",
            "application/json",
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}"#.to_vec(),
        ),
        (
            "a JSON patch that is not a list",
            Method::PATCH,
            "/api/v1/namespaces/default/configmaps/x",
            "application/json-patch+json",
            b"{}".to_vec(),
        ),
        (
            "a huge body",
            Method::POST,
            cms,
            "application/json",
            vec![b' '; 4 * 1024 * 1024],
        ),
    ];
    for (what, method, path, ct, body) in cases {
        let (code, status) = send(&s.client, method, path, ct, body).await;
        assert_status(code, &status, what);
    }
    let (code, list) = send(&s.client, Method::GET, cms, "application/json", Vec::new()).await;
    assert_eq!(code, 200);
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect();
    assert!(
        !names.iter().any(|n| *n == "x" || n.starts_with("Not")),
        "nothing was written: {names:?}"
    );
}

fn any_method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::POST),
        Just(Method::PUT),
        Just(Method::PATCH),
        Just(Method::DELETE)
    ]
}

fn any_path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("api".to_string()),
        Just("apis".to_string()),
        Just("v1".to_string()),
        Just("apps".to_string()),
        Just("namespaces".to_string()),
        Just("default".to_string()),
        Just("pods".to_string()),
        Just("deployments".to_string()),
        Just("status".to_string()),
        Just("scale".to_string()),
        Just("binding".to_string()),
        "[a-z0-9.%-]{0,12}",
    ];
    (
        proptest::collection::vec(segment, 0..7),
        "[a-zA-Z=&%0-9]{0,20}",
    )
        .prop_map(|(segs, q)| format!("/{}?{q}", segs.join("/")))
}

fn any_content_type() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("application/json"),
        Just("application/yaml"),
        Just("application/merge-patch+json"),
        Just("application/strategic-merge-patch+json"),
        Just("application/json-patch+json"),
        Just("application/vnd.kubernetes.protobuf"),
    ]
}

fn any_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        "\\PC{0,200}".prop_map(String::into_bytes),
        Just(br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i"}]}}"#.to_vec()),
        Just(br#"{"metadata":{"name":null},"spec":{"containers":[null]}}"#.to_vec()),
        Just(br#"[{"op":"remove","path":"/metadata"}]"#.to_vec()),
    ]
}

#[test]
fn no_request_makes_the_server_fail() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = rt.block_on(support::start());
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 300,
        ..Default::default()
    });
    runner
        .run(
            &(any_method(), any_path(), any_content_type(), any_body()),
            |(method, path, ct, body)| {
                let (code, status) =
                    rt.block_on(send(&server.client, method.clone(), &path, ct, body));
                prop_assert!(code < 500, "{method} {path} ({ct}) -> {code} {status}");
                if code >= 400 {
                    prop_assert_eq!(
                        &status["kind"],
                        "Status",
                        "{} {} -> {}",
                        method,
                        path,
                        status
                    );
                }
                Ok(())
            },
        )
        .expect("every request answered without a server error");
    let (code, _) = rt.block_on(send(
        &server.client,
        Method::GET,
        "/readyz",
        "application/json",
        Vec::new(),
    ));
    assert_eq!(code, 200, "still ready");
}
