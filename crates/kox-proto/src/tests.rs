//! Hand-built wire bytes, decoded and compared with the exact JSON (key order included).

use serde_json::{Value, json};

use super::*;

// ---- a tiny protobuf encoder for the tests -------------------------------------------------

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

/// A varint field (`int32`, `int64`, `bool`; negative numbers sign-extended as protobuf does).
fn int(n: u32, v: i64) -> Vec<u8> {
    let mut out = varint(u64::from(n) << 3);
    out.extend(varint(v as u64));
    out
}

/// A length-delimited field (string, bytes, message).
fn len(n: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = varint(u64::from(n) << 3 | 2);
    out.extend(varint(bytes.len() as u64));
    out.extend_from_slice(bytes);
    out
}

fn s(n: u32, v: &str) -> Vec<u8> {
    len(n, v.as_bytes())
}

/// A message field built from its parts.
fn m(n: u32, parts: &[Vec<u8>]) -> Vec<u8> {
    len(n, &parts.concat())
}

/// A map entry {1: key, 2: value parts}.
fn entry(n: u32, key: &str, value: Vec<u8>) -> Vec<u8> {
    m(n, &[s(1, key), value])
}

fn string_entry(n: u32, key: &str, value: &str) -> Vec<u8> {
    entry(n, key, s(2, value))
}

/// `k8s\0` + runtime.Unknown{typeMeta, raw, contentEncoding "", contentType ""}, as upstream writes it.
fn envelope(api_version: &str, kind: &str, raw: &[Vec<u8>]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend(m(1, &[s(1, api_version), s(2, kind)]));
    out.extend(len(2, &raw.concat()));
    out.extend(s(3, ""));
    out.extend(s(4, ""));
    out
}

/// ObjectMeta as upstream's encoder writes it: every non-pointer field, zero or not.
fn meta(name: &str, namespace: &str, labels: &[(&str, &str)]) -> Vec<u8> {
    let mut parts = vec![
        s(1, name),
        s(2, ""),
        s(3, namespace),
        s(4, ""),
        s(5, ""),
        s(6, ""),
        int(7, 0),
        m(8, &[]),
    ];
    for (k, v) in labels {
        parts.push(string_entry(11, k, v));
    }
    m(1, &parts)
}

fn int_or_string_int(n: u32, v: i64) -> Vec<u8> {
    m(n, &[int(1, 0), int(2, v), s(3, "")])
}

fn int_or_string_str(n: u32, v: &str) -> Vec<u8> {
    m(n, &[int(1, 1), int(2, 0), s(3, v)])
}

fn quantity(n: u32, v: &str) -> Vec<u8> {
    m(n, &[s(1, v)])
}

fn decode(body: &[u8]) -> Value {
    decode_object(body).unwrap_or_else(|e| panic!("decode failed: {e}"))
}

/// Compares as text, so that key order counts too.
fn assert_json(got: &Value, want: Value) {
    assert_eq!(
        serde_json::to_string_pretty(got).unwrap(),
        serde_json::to_string_pretty(&want).unwrap()
    );
}

// ---- the kinds kubectl's generators send ----------------------------------------------------

#[test]
fn config_map_with_data_and_binary_data() {
    let body = envelope(
        "v1",
        "ConfigMap",
        &[
            meta("c", "default", &[]),
            string_entry(2, "a", "b"),
            string_entry(2, "game.properties", "lives=3\n"),
            entry(3, "bin", len(2, &[0, 1, 2, 0xff])),
        ],
    );
    assert_json(
        &decode(&body),
        json!({
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "metadata": {"name": "c", "namespace": "default"},
            "data": {"a": "b", "game.properties": "lives=3\n"},
            "binaryData": {"bin": "AAEC/w=="},
        }),
    );
}

#[test]
fn deployment_with_zero_replicas_int_or_string_and_quantity() {
    let container = m(
        2,
        &[
            s(1, "nginx"),
            s(2, "nginx:1.27"),
            m(
                8,
                &[
                    entry(1, "cpu", quantity(2, "500m")),
                    entry(1, "memory", quantity(2, "128Mi")),
                ],
            ),
            s(13, ""),
            s(14, ""),
            int(16, 0),
            int(17, 0),
            int(18, 0),
        ],
    );
    let pod_spec = m(2, &[container, s(3, ""), s(6, ""), s(8, ""), int(11, 0)]);
    let spec = m(
        2,
        &[
            int(1, 0),
            m(2, &[string_entry(1, "app", "d")]),
            m(3, &[meta("", "", &[("app", "d")]), pod_spec]),
            m(
                4,
                &[
                    s(1, "RollingUpdate"),
                    m(2, &[int_or_string_int(1, 1), int_or_string_str(2, "25%")]),
                ],
            ),
            int(5, 0),
            int(7, 0),
        ],
    );
    let status = m(3, &[int(1, 0), int(2, 0), int(3, 0), int(4, 0), int(5, 0)]);
    let body = envelope(
        "apps/v1",
        "Deployment",
        &[meta("d", "", &[("app", "d")]), spec, status],
    );
    assert_json(
        &decode(&body),
        json!({
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "metadata": {"name": "d", "labels": {"app": "d"}},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "d"}},
                "template": {
                    "metadata": {"labels": {"app": "d"}},
                    "spec": {
                        "containers": [{
                            "name": "nginx",
                            "image": "nginx:1.27",
                            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
                        }],
                    },
                },
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"},
                },
            },
        }),
    );
}

#[test]
fn secret_bytes_are_base64() {
    let body = envelope(
        "v1",
        "Secret",
        &[
            meta("s", "", &[]),
            entry(2, "p", len(2, b"q")),
            entry(2, "empty", len(2, b"")),
            s(3, "Opaque"),
        ],
    );
    assert_json(
        &decode(&body),
        json!({
            "kind": "Secret",
            "apiVersion": "v1",
            "metadata": {"name": "s"},
            "data": {"p": "cQ==", "empty": ""},
            "type": "Opaque",
        }),
    );
}

#[test]
fn service_with_int_target_port() {
    let port = m(
        1,
        &[
            s(1, "80-8080"),
            s(2, "TCP"),
            int(3, 80),
            int_or_string_int(4, 8080),
            int(5, 0),
        ],
    );
    let spec = m(
        2,
        &[
            port,
            string_entry(2, "app", "s"),
            s(3, ""),
            s(4, "ClusterIP"),
            s(7, ""),
            int(13, 0),
        ],
    );
    let status = m(3, &[m(1, &[])]);
    let body = envelope(
        "v1",
        "Service",
        &[meta("s", "", &[("app", "s")]), spec, status],
    );
    assert_json(
        &decode(&body),
        json!({
            "kind": "Service",
            "apiVersion": "v1",
            "metadata": {"name": "s", "labels": {"app": "s"}},
            "spec": {
                "ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}],
                "selector": {"app": "s"},
                "type": "ClusterIP",
            },
        }),
    );
}

#[test]
fn unset_target_port_and_zero_required_port() {
    // A non-pointer IntOrString at its zero value is "unset" (omitempty); `port` has no
    // omitempty, so its zero is written.
    let port = m(1, &[int_or_string_int(4, 0)]);
    let body = envelope("v1", "Service", &[meta("s", "", &[]), m(2, &[port])]);
    assert_eq!(decode(&body)["spec"]["ports"], json!([{"port": 0}]));
}

// ---- special types and encodings ------------------------------------------------------------

#[test]
fn times_and_micro_times() {
    // events.k8s.io/v1 Event: eventTime is a MicroTime, deprecatedFirstTimestamp a Time.
    let ts = |n: u32, secs: i64, nanos: i64| m(n, &[int(1, secs), int(2, nanos)]);
    let object_meta = m(
        1,
        &[
            s(1, "e"),
            ts(8, 1_767_323_045, 0),
            ts(9, 1_767_323_046, 500),
        ],
    );
    let body = envelope(
        "events.k8s.io/v1",
        "Event",
        &[
            object_meta,
            ts(2, 1_767_323_045, 123_456_789),
            s(7, "Started"),
            ts(13, 1_767_323_045, 999),
            m(14, &[]),
        ],
    );
    assert_json(
        &decode(&body),
        json!({
            "kind": "Event",
            "apiVersion": "events.k8s.io/v1",
            "metadata": {
                "name": "e",
                "creationTimestamp": "2026-01-02T03:04:05Z",
                "deletionTimestamp": "2026-01-02T03:04:06Z",
            },
            "eventTime": "2026-01-02T03:04:05.123456Z",
            "reason": "Started",
            "deprecatedFirstTimestamp": "2026-01-02T03:04:05Z",
        }),
    );
}

#[test]
fn inline_structs_are_merged_into_their_parent() {
    // core/v1 Volume.volumeSource and Probe.handler are `json:",inline"`.
    let volume = m(
        1,
        &[
            s(1, "data"),
            m(2, &[m(2, &[s(1, "Memory"), quantity(2, "1Gi")])]),
        ],
    );
    let probe = m(
        10,
        &[
            m(
                1,
                &[m(2, &[s(1, "/healthz"), int_or_string_str(2, "http")])],
            ),
            int(2, 0),
            int(4, 10),
        ],
    );
    let container = m(2, &[s(1, "c"), probe]);
    let body = envelope(
        "v1",
        "Pod",
        &[meta("p", "", &[]), m(2, &[volume, container])],
    );
    assert_json(
        &decode(&body)["spec"],
        json!({
            "volumes": [{"name": "data", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}],
            "containers": [{
                "name": "c",
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10},
            }],
        }),
    );
}

#[test]
fn ingress_rule_value_is_inline() {
    let backend = m(2, &[m(4, &[s(1, "svc1"), m(2, &[s(1, ""), int(2, 8080)])])]);
    let path = m(1, &[s(1, "/bar"), s(3, "Exact"), backend]);
    let rule = m(3, &[s(1, "foo.com"), m(2, &[m(1, &[path])])]);
    let body = envelope(
        "networking.k8s.io/v1",
        "Ingress",
        &[meta("i", "", &[]), m(2, &[rule])],
    );
    assert_json(
        &decode(&body)["spec"],
        json!({"rules": [{
            "host": "foo.com",
            "http": {"paths": [{
                "path": "/bar",
                "pathType": "Exact",
                "backend": {"service": {"name": "svc1", "port": {"number": 8080}}},
            }]},
        }]}),
    );
}

#[test]
fn raw_extension_embeds_json_and_nested_protobuf() {
    let json_data = br#"{"spec":{"template":{"x":1}}}"#;
    let body = envelope(
        "apps/v1",
        "ControllerRevision",
        &[meta("r", "", &[]), m(2, &[len(1, json_data)]), int(3, 2)],
    );
    assert_json(
        &decode(&body),
        json!({
            "kind": "ControllerRevision",
            "apiVersion": "apps/v1",
            "metadata": {"name": "r"},
            "data": {"spec": {"template": {"x": 1}}},
            "revision": 2,
        }),
    );
    let nested = envelope("v1", "ConfigMap", &[meta("inner", "", &[])]);
    let body = envelope(
        "apps/v1",
        "ControllerRevision",
        &[meta("r", "", &[]), m(2, &[len(1, &nested)]), int(3, 0)],
    );
    assert_json(
        &decode(&body),
        json!({
            "kind": "ControllerRevision",
            "apiVersion": "apps/v1",
            "metadata": {"name": "r"},
            "data": {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "inner"}},
            "revision": 0,
        }),
    );
}

#[test]
fn managed_fields_carry_raw_json() {
    let entry_msg = m(
        17,
        &[
            s(1, "kubectl"),
            s(2, "Update"),
            s(3, "v1"),
            s(6, "FieldsV1"),
            m(7, &[len(1, br#"{"f:data":{}}"#)]),
        ],
    );
    let body = envelope("v1", "ConfigMap", &[m(1, &[s(1, "c"), entry_msg])]);
    assert_json(
        &decode(&body)["metadata"],
        json!({"name": "c", "managedFields": [{
            "manager": "kubectl",
            "operation": "Update",
            "apiVersion": "v1",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {}},
        }]}),
    );
}

#[test]
fn renamed_fields_use_their_json_names() {
    // authentication/v1 BoundObjectReference.uid is `uID` in the .proto.
    let bound = m(3, &[s(1, "Pod"), s(2, "v1"), s(3, "p"), s(4, "1234")]);
    let body = envelope(
        "authentication.k8s.io/v1",
        "TokenRequest",
        &[
            meta("sa", "", &[]),
            m(2, &[s(1, "api"), int(4, 3600), bound]),
        ],
    );
    assert_json(
        &decode(&body)["spec"],
        json!({
            "audiences": ["api"],
            "expirationSeconds": 3600,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "1234"},
        }),
    );
}

#[test]
fn packed_and_unpacked_repeated_negative_and_merged_fields() {
    // core/v1 PodSecurityContext.supplementalGroups (repeated int64), packed and not;
    // runAsUser -1 as a sign-extended varint; the spec message sent in two parts is merged.
    let mut packed = Vec::new();
    for v in [1u64, 2, 300] {
        packed.extend(varint(v));
    }
    let security = m(14, &[len(4, &packed), int(4, 7), int(2, -1)]);
    let body = envelope(
        "v1",
        "Pod",
        &[meta("p", "", &[]), m(2, &[security]), m(2, &[s(8, "sa")])],
    );
    assert_json(
        &decode(&body)["spec"],
        json!({
            "serviceAccountName": "sa",
            "securityContext": {"runAsUser": -1, "supplementalGroups": [1, 2, 300, 7]},
        }),
    );
}

#[test]
fn unknown_fields_are_skipped() {
    let mut raw = meta("c", "", &[]);
    raw.extend(int(99, 5));
    raw.extend(s(98, "future"));
    raw.extend(string_entry(2, "a", "b"));
    let body = envelope("v1", "ConfigMap", &[raw]);
    assert_json(
        &decode(&body),
        json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c"}, "data": {"a": "b"}}),
    );
}

#[test]
fn delete_options_in_any_group_version() {
    let body = envelope("apps/v1", "DeleteOptions", &[int(1, 0), s(4, "Foreground")]);
    assert_json(
        &decode(&body),
        json!({
            "kind": "DeleteOptions",
            "apiVersion": "apps/v1",
            "gracePeriodSeconds": 0,
            "propagationPolicy": "Foreground",
        }),
    );
}

// ---- errors ---------------------------------------------------------------------------------

#[test]
fn bad_magic() {
    assert_eq!(
        decode_object(b"{\"kind\":\"Pod\"}"),
        Err(ProtoError::BadMagic)
    );
    assert_eq!(decode_object(b"k8s"), Err(ProtoError::BadMagic));
}

#[test]
fn unknown_kind_is_unsupported() {
    let err = decode_object(&envelope("example.com/v1", "Widget", &[])).unwrap_err();
    assert!(err.is_unsupported());
    assert_eq!(
        err.to_string(),
        "protobuf is not supported for apiVersion \"example.com/v1\", kind \"Widget\": send the object as JSON or YAML"
    );
}

#[test]
fn content_encoding_is_unsupported() {
    let mut body = MAGIC.to_vec();
    body.extend(m(1, &[s(1, "v1"), s(2, "ConfigMap")]));
    body.extend(s(3, "gzip"));
    let err = decode_object(&body).unwrap_err();
    assert!(err.is_unsupported());
}

#[test]
fn malformed_data_names_the_field() {
    // A container whose image field claims more bytes than there are.
    let mut container = s(1, "c");
    container.extend([0x12, 0x7f, b'x']);
    let body = envelope(
        "v1",
        "Pod",
        &[meta("p", "", &[]), m(2, &[len(2, &container)])],
    );
    let err = decode_object(&body).unwrap_err();
    assert!(!err.is_unsupported());
    assert_eq!(
        err.to_string(),
        "malformed protobuf v1 Pod at spec.containers[0].image: truncated data: 127 bytes wanted, 1 left"
    );
    // A string field sent as a varint.
    let body = envelope("v1", "ConfigMap", &[m(1, &[int(1, 5)])]);
    assert_eq!(
        decode_object(&body).unwrap_err().to_string(),
        "malformed protobuf v1 ConfigMap at metadata.name: wire type varint where length-delimited was expected"
    );
    // A truncated envelope.
    let mut body = MAGIC.to_vec();
    body.extend([0x0a, 0x10]);
    assert!(matches!(
        decode_object(&body),
        Err(ProtoError::Malformed { .. })
    ));
}

#[test]
fn deeply_nested_raw_extensions_are_refused() {
    let mut body = envelope("v1", "ConfigMap", &[meta("c", "", &[])]);
    for _ in 0..(MAX_DEPTH + 5) {
        body = envelope("apps/v1", "ControllerRevision", &[m(2, &[len(1, &body)])]);
    }
    assert!(decode_object(&body).is_err());
}

// ---- coverage -------------------------------------------------------------------------------

#[test]
fn every_kind_the_server_serves_is_covered() {
    let served = [
        ("v1", "Binding"),
        ("v1", "ConfigMap"),
        ("v1", "Endpoints"),
        ("v1", "Event"),
        ("v1", "LimitRange"),
        ("v1", "Namespace"),
        ("v1", "Node"),
        ("v1", "PersistentVolume"),
        ("v1", "PersistentVolumeClaim"),
        ("v1", "Pod"),
        ("v1", "PodTemplate"),
        ("v1", "ReplicationController"),
        ("v1", "ResourceQuota"),
        ("v1", "Secret"),
        ("v1", "ServiceAccount"),
        ("v1", "Service"),
        ("apps/v1", "ControllerRevision"),
        ("apps/v1", "DaemonSet"),
        ("apps/v1", "Deployment"),
        ("apps/v1", "ReplicaSet"),
        ("apps/v1", "StatefulSet"),
        ("autoscaling/v1", "Scale"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("batch/v1", "CronJob"),
        ("batch/v1", "Job"),
        ("coordination.k8s.io/v1", "Lease"),
        ("discovery.k8s.io/v1", "EndpointSlice"),
        ("events.k8s.io/v1", "Event"),
        ("networking.k8s.io/v1", "Ingress"),
        ("networking.k8s.io/v1", "IngressClass"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
        ("policy/v1", "PodDisruptionBudget"),
        ("policy/v1", "Eviction"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
        ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("scheduling.k8s.io/v1", "PriorityClass"),
        ("storage.k8s.io/v1", "StorageClass"),
        ("authentication.k8s.io/v1", "TokenRequest"),
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
        ("v1", "DeleteOptions"),
        ("policy/v1", "DeleteOptions"),
    ];
    for (api_version, kind) in served {
        assert!(supports(api_version, kind), "{api_version} {kind}");
        // An empty object of each kind decodes to its bare type meta.
        let v = decode(&envelope(api_version, kind, &[]));
        assert_eq!(v["kind"], kind);
    }
}

#[test]
fn the_tables_are_consistent() {
    use crate::generated::{KINDS, MESSAGES};
    use crate::schema::{Special, Ty};
    for (i, msg) in MESSAGES.iter().enumerate() {
        let mut numbers: Vec<u32> = msg.fields.iter().map(|f| f.number).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(
            numbers.len(),
            msg.fields.len(),
            "{}: duplicate field numbers",
            msg.name
        );
        for f in msg.fields {
            if let Ty::Message(m) = f.ty {
                assert!(usize::from(m) < MESSAGES.len(), "{}.{}", msg.name, f.json);
            }
        }
        if msg.special == Special::List {
            assert_eq!(msg.fields.len(), 1, "{i}");
        }
    }
    for k in KINDS {
        assert_eq!(
            MESSAGES[usize::from(k.message)].special,
            Special::None,
            "{}",
            k.kind
        );
    }
}
