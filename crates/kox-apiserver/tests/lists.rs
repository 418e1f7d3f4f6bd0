//! LIST semantics: `limit`/`continue` paging at one snapshot, `resourceVersion=0`, label and
//! field selectors, as upstream's generic registry and `apimachinery/pkg/labels|fields` define
//! them.

mod support;

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{api_error, config_map, labelled, namespace, pod_json, start};

fn names<K: kube::Resource>(items: &[K]) -> BTreeSet<String> {
    items
        .iter()
        .map(|o| o.meta().name.clone().unwrap())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn paging_returns_every_object_once_at_one_resource_version() {
    let s = start().await;
    let ns = namespace(&s.client, "paging").await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), &ns);
    for i in 0..27 {
        api.create(
            &PostParams::default(),
            &config_map(&format!("cm-{i:02}"), "v"),
        )
        .await
        .unwrap();
    }
    let mut seen = Vec::new();
    let mut lp = ListParams::default().limit(10);
    let first = api.list(&lp).await.unwrap();
    let snapshot = first.metadata.resource_version.clone().unwrap();
    assert_eq!(first.items.len(), 10);
    assert_eq!(first.metadata.remaining_item_count, Some(17));
    seen.extend(first.items.iter().map(|c| c.metadata.name.clone().unwrap()));
    let mut token = first.metadata.continue_.clone();
    // Objects created between pages are not part of this list: it is one snapshot.
    for i in 0..5 {
        api.create(
            &PostParams::default(),
            &config_map(&format!("cm-late-{i}"), "v"),
        )
        .await
        .unwrap();
    }
    let mut pages = 1;
    while let Some(t) = token.filter(|t| !t.is_empty()) {
        lp = lp.continue_token(&t);
        let page = api.list(&lp).await.unwrap();
        pages += 1;
        assert_eq!(
            page.metadata.resource_version.as_deref(),
            Some(snapshot.as_str()),
            "every page is served at the first page's resourceVersion"
        );
        assert!(page.items.len() <= 10);
        seen.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        token = page.metadata.continue_.clone();
    }
    assert_eq!(pages, 3);
    let unique: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), 27, "{seen:?}");
    assert_eq!(unique.len(), 27);
    assert!(unique.iter().all(|n| !n.starts_with("cm-late")));
    // A fresh list sees them all.
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        32
    );
}

#[tokio::test]
async fn last_page_has_no_continue_token() {
    let s = start().await;
    let ns = namespace(&s.client, "last-page").await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), &ns);
    for i in 0..4 {
        api.create(&PostParams::default(), &config_map(&format!("cm-{i}"), "v"))
            .await
            .unwrap();
    }
    let list = api.list(&ListParams::default().limit(4)).await.unwrap();
    assert_eq!(list.items.len(), 4);
    assert!(list.metadata.continue_.as_deref().unwrap_or("").is_empty());
    assert_eq!(list.metadata.remaining_item_count, None);
}

#[tokio::test]
async fn paging_with_a_label_selector_fills_pages_with_matches() {
    let s = start().await;
    let ns = namespace(&s.client, "paging-sel").await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), &ns);
    for i in 0..30 {
        let mut cm = config_map(&format!("cm-{i:02}"), "v");
        let parity = if i % 2 == 0 { "even" } else { "odd" };
        cm.metadata.labels = Some([("parity".to_string(), parity.to_string())].into());
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    let mut lp = ListParams::default().labels("parity=even").limit(4);
    let mut seen = Vec::new();
    loop {
        let page = api.list(&lp).await.unwrap();
        assert!(page.items.len() <= 4);
        seen.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        match page.metadata.continue_.filter(|t| !t.is_empty()) {
            Some(t) => lp = lp.continue_token(&t),
            None => break,
        }
    }
    let expected: Vec<String> = (0..30).step_by(2).map(|i| format!("cm-{i:02}")).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn list_at_resource_version_zero_returns_current_objects() {
    let s = start().await;
    let ns = namespace(&s.client, "rv-zero").await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), &ns);
    for i in 0..3 {
        api.create(&PostParams::default(), &config_map(&format!("cm-{i}"), "v"))
            .await
            .unwrap();
    }
    let list = api.list(&ListParams::default().match_any()).await.unwrap();
    assert_eq!(names(&list.items), set(&["cm-0", "cm-1", "cm-2"]));
    let rv: i64 = list.metadata.resource_version.unwrap().parse().unwrap();
    assert!(rv > 0);
}

#[tokio::test]
async fn list_resource_version_is_at_least_that_of_every_item() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &config_map("one", "v"))
        .await
        .unwrap();
    let list = api.list(&ListParams::default()).await.unwrap();
    let list_rv: i64 = list.metadata.resource_version.unwrap().parse().unwrap();
    let item_rv: i64 = created.metadata.resource_version.unwrap().parse().unwrap();
    assert!(list_rv >= item_rv);
}

/// a: env=prod,tier=web  b: env=dev,tier=web  c: env=prod  d: (no labels)
async fn labelled_config_maps(client: &kube::Client, ns: &str) -> Api<ConfigMap> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let objects = [
        ("a", vec![("env", "prod"), ("tier", "web")]),
        ("b", vec![("env", "dev"), ("tier", "web")]),
        ("c", vec![("env", "prod")]),
        ("d", vec![]),
    ];
    for (name, labels) in objects {
        let cm = ConfigMap {
            metadata: labelled(name, &labels),
            ..Default::default()
        };
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    api
}

async fn select(api: &Api<ConfigMap>, selector: &str) -> BTreeSet<String> {
    names(
        &api.list(&ListParams::default().labels(selector))
            .await
            .unwrap_or_else(|e| panic!("listing with {selector:?}: {e}"))
            .items,
    )
}

#[tokio::test]
async fn label_selector_equality_matches_the_value() {
    let s = start().await;
    let api = labelled_config_maps(&s.client, "default").await;
    assert_eq!(select(&api, "env=prod").await, set(&["a", "c"]));
    assert_eq!(select(&api, "env==prod").await, set(&["a", "c"]));
    assert_eq!(select(&api, "env=prod,tier=web").await, set(&["a"]));
}

#[tokio::test]
async fn label_selector_inequality_also_matches_objects_without_the_key() {
    let s = start().await;
    let api = labelled_config_maps(&s.client, "default").await;
    assert_eq!(select(&api, "env!=prod").await, set(&["b", "d"]));
}

#[tokio::test]
async fn label_selector_in_matches_any_listed_value() {
    let s = start().await;
    let api = labelled_config_maps(&s.client, "default").await;
    assert_eq!(
        select(&api, "env in (dev,prod)").await,
        set(&["a", "b", "c"])
    );
    assert_eq!(select(&api, "env in (dev)").await, set(&["b"]));
}

#[tokio::test]
async fn label_selector_notin_also_matches_objects_without_the_key() {
    let s = start().await;
    let api = labelled_config_maps(&s.client, "default").await;
    assert_eq!(select(&api, "env notin (prod)").await, set(&["b", "d"]));
}

#[tokio::test]
async fn label_selector_exists_and_does_not_exist() {
    let s = start().await;
    let api = labelled_config_maps(&s.client, "default").await;
    assert_eq!(select(&api, "tier").await, set(&["a", "b"]));
    assert_eq!(select(&api, "!tier").await, set(&["c", "d"]));
    assert_eq!(select(&api, "env,!tier").await, set(&["c"]));
}

#[tokio::test]
async fn malformed_label_selector_is_bad_request() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    for bad in ["env in (prod", "env=prod,,", "!env=prod", "a b"] {
        let err = api_error(api.list(&ListParams::default().labels(bad)).await);
        assert_eq!(err.code, 400, "{bad:?}: {err:?}");
        assert_eq!(err.reason, "BadRequest", "{bad:?}");
    }
}

#[tokio::test]
async fn field_selector_on_metadata_name() {
    let s = start().await;
    let api = labelled_config_maps(&s.client, "default").await;
    let got = api
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .unwrap();
    assert_eq!(names(&got.items), set(&["b"]));
    let got = api
        .list(&ListParams::default().fields("metadata.name!=b"))
        .await
        .unwrap();
    assert_eq!(names(&got.items), set(&["a", "c", "d"]));
}

#[tokio::test]
async fn field_selector_on_metadata_namespace_across_namespaces() {
    let s = start().await;
    for ns in ["ns-one", "ns-two"] {
        namespace(&s.client, ns).await;
        let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), ns);
        api.create(
            &PostParams::default(),
            &config_map(&format!("in-{ns}"), "v"),
        )
        .await
        .unwrap();
    }
    let all: Api<ConfigMap> = Api::all(s.client.clone());
    let got = all
        .list(&ListParams::default().fields("metadata.namespace=ns-two"))
        .await
        .unwrap();
    assert_eq!(names(&got.items), set(&["in-ns-two"]));
}

async fn pods_on_nodes(client: &kube::Client) -> Api<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    for (name, node) in [("p1", Some("node-1")), ("p2", Some("node-2")), ("p3", None)] {
        let mut manifest = pod_json(name);
        if let Some(node) = node {
            manifest["spec"]["nodeName"] = json!(node);
        }
        let pod: Pod = serde_json::from_value(manifest).unwrap();
        api.create(&PostParams::default(), &pod).await.unwrap();
    }
    api
}

#[tokio::test]
async fn field_selector_on_pod_node_name() {
    let s = start().await;
    let api = pods_on_nodes(&s.client).await;
    let on_node = api
        .list(&ListParams::default().fields("spec.nodeName=node-1"))
        .await
        .unwrap();
    assert_eq!(names(&on_node.items), set(&["p1"]));
    // What the scheduler watches: pods not bound yet.
    let unbound = api
        .list(&ListParams::default().fields("spec.nodeName="))
        .await
        .unwrap();
    assert_eq!(names(&unbound.items), set(&["p3"]));
}

#[tokio::test]
async fn field_selector_on_pod_phase() {
    let s = start().await;
    let api = pods_on_nodes(&s.client).await;
    api.patch_status(
        "p2",
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": { "phase": "Running" } })),
    )
    .await
    .unwrap();
    let running = api
        .list(&ListParams::default().fields("status.phase=Running"))
        .await
        .unwrap();
    assert_eq!(names(&running.items), set(&["p2"]));
    let rest = api
        .list(&ListParams::default().fields("status.phase!=Running,spec.nodeName!=node-1"))
        .await
        .unwrap();
    assert_eq!(names(&rest.items), set(&["p3"]));
}

#[tokio::test]
async fn field_selector_on_event_involved_object_name() {
    let s = start().await;
    let api: Api<Event> = Api::namespaced(s.client.clone(), "default");
    for (name, object) in [("e1", "web"), ("e2", "db"), ("e3", "web")] {
        let event: Event = serde_json::from_value(json!({
            "metadata": { "name": name },
            "involvedObject": { "kind": "Pod", "name": object, "namespace": "default" },
            "reason": "Started",
            "message": "started",
            "type": "Normal",
            "source": { "component": "kubelet" },
        }))
        .unwrap();
        api.create(&PostParams::default(), &event).await.unwrap();
    }
    let got = api
        .list(&ListParams::default().fields("involvedObject.name=web,involvedObject.kind=Pod"))
        .await
        .unwrap();
    assert_eq!(names(&got.items), set(&["e1", "e3"]));
}

#[tokio::test]
async fn field_selector_on_unsupported_field_is_bad_request() {
    let s = start().await;
    let api: Api<Pod> = Api::namespaced(s.client.clone(), "default");
    let err = api_error(
        api.list(&ListParams::default().fields("spec.bogus=x"))
            .await,
    );
    assert_eq!(err.code, 400);
    assert_eq!(err.reason, "BadRequest");
    // The field-label conversion's error for a field the kind does not select on.
    assert_eq!(err.message, "field label not supported: spec.bogus");
}

#[tokio::test]
async fn malformed_field_selector_is_bad_request() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let err = api_error(
        api.list(&ListParams::default().fields("metadata.name"))
            .await,
    );
    assert_eq!(err.code, 400);
    assert_eq!(err.reason, "BadRequest");
}

#[tokio::test]
async fn list_at_a_future_resource_version_is_timeout() {
    // The cacher waits for the resourceVersion (up to 3 s), then answers
    // NewTooLargeResourceVersionError: 504 Timeout.
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let lp = ListParams {
        resource_version: Some("999999999".into()),
        ..Default::default()
    };
    let err = api_error(api.list(&lp).await);
    assert_eq!(err.code, 504);
    assert_eq!(err.reason, "Timeout");
    assert!(
        err.message
            .starts_with("Timeout: Too large resource version: 999999999, current: "),
        "{}",
        err.message
    );
    let details = err.details.unwrap();
    assert_eq!(details.retry_after_seconds, 1);
    assert_eq!(details.causes[0].reason, "ResourceVersionTooLarge");
}

#[tokio::test]
async fn garbage_continue_token_is_bad_request() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let err = api_error(
        api.list(&ListParams::default().limit(5).continue_token("not-a-token"))
            .await,
    );
    assert_eq!(err.code, 400);
    assert_eq!(err.reason, "BadRequest");
}

#[tokio::test]
async fn continue_token_of_another_namespace_is_bad_request() {
    let s = start().await;
    for ns in ["one", "two"] {
        namespace(&s.client, ns).await;
        let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), ns);
        for i in 0..3 {
            api.create(&PostParams::default(), &config_map(&format!("cm-{i}"), "v"))
                .await
                .unwrap();
        }
    }
    let one: Api<ConfigMap> = Api::namespaced(s.client.clone(), "one");
    let token = one
        .list(&ListParams::default().limit(1))
        .await
        .unwrap()
        .metadata
        .continue_
        .unwrap();
    let two: Api<ConfigMap> = Api::namespaced(s.client.clone(), "two");
    let err = api_error(
        two.list(&ListParams::default().limit(1).continue_token(&token))
            .await,
    );
    assert_eq!(err.code, 400);
}
