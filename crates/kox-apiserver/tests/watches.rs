//! WATCH semantics: event order and types from a resourceVersion, selector transitions,
//! bookmarks and `timeoutSeconds`, through both `Api::watch` and `kube::runtime::watcher`, as
//! upstream's cacher (`apiserver/pkg/storage/cacher`) and etcd3 watcher serve them.

mod support;

use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use serde_json::json;
use support::{config_map, labelled, start};

/// The next event, failing the test if none comes within five seconds.
async fn next<S, T, E>(stream: &mut S) -> T
where
    S: Stream<Item = Result<T, E>> + Unpin,
    E: std::fmt::Debug,
{
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("no watch event within 5 s")
        .expect("the watch ended")
        .expect("watch error")
}

/// Type and name of a watch event, ignoring bookmarks' lack of a name.
fn describe(e: &WatchEvent<ConfigMap>) -> (String, String) {
    match e {
        WatchEvent::Added(o) => ("ADDED".into(), o.metadata.name.clone().unwrap()),
        WatchEvent::Modified(o) => ("MODIFIED".into(), o.metadata.name.clone().unwrap()),
        WatchEvent::Deleted(o) => ("DELETED".into(), o.metadata.name.clone().unwrap()),
        WatchEvent::Bookmark(b) => ("BOOKMARK".into(), b.metadata.resource_version.clone()),
        WatchEvent::Error(e) => ("ERROR".into(), e.message.clone()),
    }
}

fn rv_of(e: &WatchEvent<ConfigMap>) -> i64 {
    let rv = match e {
        WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
            o.metadata.resource_version.clone().unwrap()
        }
        WatchEvent::Bookmark(b) => b.metadata.resource_version.clone(),
        WatchEvent::Error(e) => panic!("watch error {e:?}"),
    };
    rv.parse().unwrap()
}

/// The next event that is not a bookmark.
async fn next_change<S>(stream: &mut S) -> WatchEvent<ConfigMap>
where
    S: Stream<Item = Result<WatchEvent<ConfigMap>, kube::Error>> + Unpin,
{
    loop {
        let e = next(stream).await;
        if !matches!(e, WatchEvent::Bookmark(_)) {
            return e;
        }
    }
}

#[tokio::test]
async fn watch_from_list_resource_version_sees_added_modified_deleted_in_order() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let created = api
        .create(&PostParams::default(), &config_map("w", "one"))
        .await
        .unwrap();
    let modified = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": { "key": "two" } })),
        )
        .await
        .unwrap();
    api.delete("w", &DeleteParams::default()).await.unwrap();

    let added = next_change(&mut stream).await;
    assert_eq!(describe(&added), ("ADDED".into(), "w".into()));
    assert_eq!(
        rv_of(&added).to_string(),
        created.metadata.resource_version.unwrap()
    );
    let changed = next_change(&mut stream).await;
    assert_eq!(describe(&changed), ("MODIFIED".into(), "w".into()));
    assert_eq!(
        rv_of(&changed).to_string(),
        modified.metadata.resource_version.clone().unwrap()
    );
    let WatchEvent::Modified(obj) = &changed else {
        unreachable!()
    };
    assert_eq!(obj.data.as_ref().unwrap()["key"], "two");
    let deleted = next_change(&mut stream).await;
    assert_eq!(describe(&deleted), ("DELETED".into(), "w".into()));
    // The deletion has its own, later resourceVersion.
    assert!(rv_of(&deleted) > rv_of(&changed));
}

#[tokio::test]
async fn watch_from_a_resource_version_returns_exactly_the_later_events() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &config_map("a", "v"))
        .await
        .unwrap();
    let b = api
        .create(&PostParams::default(), &config_map("b", "v"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &config_map("c", "v"))
        .await
        .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "key": "w" } })),
    )
    .await
    .unwrap();
    let from = b.metadata.resource_version.unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), &from)
        .await
        .unwrap()
        .boxed();
    assert_eq!(
        describe(&next_change(&mut stream).await),
        ("ADDED".into(), "c".into())
    );
    assert_eq!(
        describe(&next_change(&mut stream).await),
        ("MODIFIED".into(), "a".into())
    );
    // Nothing else happened: no synthetic events for a or b.
    let more = tokio::time::timeout(Duration::from_millis(500), next_change(&mut stream)).await;
    assert!(
        more.is_err(),
        "unexpected event {:?}",
        more.map(|e| describe(&e))
    );
}

#[tokio::test]
async fn watch_without_resource_version_starts_with_current_state() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &config_map("a", "v"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &config_map("b", "v"))
        .await
        .unwrap();
    // resourceVersion "0": synthetic ADDED events for what exists, then changes.
    let mut stream = api
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let mut initial = vec![
        describe(&next_change(&mut stream).await),
        describe(&next_change(&mut stream).await),
    ];
    initial.sort();
    assert_eq!(
        initial,
        vec![("ADDED".into(), "a".into()), ("ADDED".into(), "b".into())]
    );
    api.create(&PostParams::default(), &config_map("c", "v"))
        .await
        .unwrap();
    assert_eq!(
        describe(&next_change(&mut stream).await),
        ("ADDED".into(), "c".into())
    );
}

#[tokio::test]
async fn label_selector_watch_reports_object_that_stops_matching_as_deleted() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let wp = WatchParams::default().labels("app=web");
    let mut stream = api.watch(&wp, &rv).await.unwrap().boxed();
    let cm = ConfigMap {
        metadata: labelled("sel", &[("app", "web")]),
        ..Default::default()
    };
    api.create(&PostParams::default(), &cm).await.unwrap();
    api.create(
        &PostParams::default(),
        &ConfigMap {
            metadata: labelled("other", &[("app", "db")]),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let relabel = |app: &str| Patch::Merge(json!({ "metadata": { "labels": { "app": app } } }));
    api.patch("sel", &PatchParams::default(), &relabel("db"))
        .await
        .unwrap();
    api.patch("sel", &PatchParams::default(), &relabel("web"))
        .await
        .unwrap();
    assert_eq!(
        describe(&next_change(&mut stream).await),
        ("ADDED".into(), "sel".into())
    );
    assert_eq!(
        describe(&next_change(&mut stream).await),
        ("DELETED".into(), "sel".into())
    );
    // Matching again: ADDED, not MODIFIED.
    assert_eq!(
        describe(&next_change(&mut stream).await),
        ("ADDED".into(), "sel".into())
    );
}

#[tokio::test]
async fn deleted_event_for_object_that_stops_matching_carries_its_last_matching_state() {
    // cacheWatcher.convertToWatchEvent (and the etcd3 watcher): "return a delete event with the
    // previous object content, but with the event's resource version".
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let cm = ConfigMap {
        metadata: labelled("sel", &[("app", "web")]),
        ..Default::default()
    };
    let created = api.create(&PostParams::default(), &cm).await.unwrap();
    let wp = WatchParams::default().labels("app=web");
    let mut stream = api
        .watch(&wp, created.metadata.resource_version.as_deref().unwrap())
        .await
        .unwrap()
        .boxed();
    let relabelled = api
        .patch(
            "sel",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "app": "db" } } })),
        )
        .await
        .unwrap();
    let event = next_change(&mut stream).await;
    let WatchEvent::Deleted(obj) = &event else {
        panic!("expected DELETED, got {:?}", describe(&event));
    };
    assert_eq!(obj.metadata.labels.as_ref().unwrap()["app"], "web");
    assert_eq!(
        obj.metadata.resource_version,
        relabelled.metadata.resource_version
    );
}

#[tokio::test]
async fn field_selector_watch_sees_only_the_named_object() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let wp = WatchParams::default().fields("metadata.name=b");
    let mut stream = api.watch(&wp, "0").await.unwrap().boxed();
    for name in ["a", "b", "c"] {
        api.create(&PostParams::default(), &config_map(name, "v"))
            .await
            .unwrap();
    }
    api.delete("b", &DeleteParams::default()).await.unwrap();
    assert_eq!(
        describe(&next_change(&mut stream).await),
        ("ADDED".into(), "b".into())
    );
    assert_eq!(
        describe(&next_change(&mut stream).await),
        ("DELETED".into(), "b".into())
    );
}

#[tokio::test]
async fn watch_with_bookmarks_sends_a_bookmark_before_the_timeout() {
    // cacheWatcher.nextBookmarkTime: a bookmark is sent 2 s before the watch's deadline (and
    // about every minute otherwise).
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &config_map("bm", "v"))
        .await
        .unwrap();
    let from = created.metadata.resource_version.unwrap();
    let wp = WatchParams::default().timeout(4);
    let events: Vec<_> = tokio::time::timeout(
        Duration::from_secs(10),
        api.watch(&wp, &from).await.unwrap().try_collect::<Vec<_>>(),
    )
    .await
    .expect("the watch should end at its timeout")
    .unwrap();
    let bookmark = events
        .iter()
        .find_map(|e| match e {
            WatchEvent::Bookmark(b) => Some(b.metadata.resource_version.clone()),
            _ => None,
        })
        .expect("a BOOKMARK before the watch timed out");
    let bookmark: i64 = bookmark.parse().unwrap();
    assert!(bookmark >= from.parse::<i64>().unwrap());
}

#[tokio::test]
async fn watch_without_bookmarks_sends_none() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let wp = WatchParams::default().disable_bookmarks().timeout(3);
    let events: Vec<_> = api
        .watch(&wp, "0")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(
        events.iter().all(|e| !matches!(e, WatchEvent::Bookmark(_))),
        "{:?}",
        events.iter().map(describe).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn timeout_seconds_ends_the_watch() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let started = std::time::Instant::now();
    let wp = WatchParams::default().timeout(1);
    let ended = tokio::time::timeout(
        Duration::from_secs(10),
        api.watch(&wp, "0").await.unwrap().try_collect::<Vec<_>>(),
    )
    .await;
    assert!(
        ended.is_ok(),
        "the watch did not end after timeoutSeconds=1"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn runtime_watcher_lists_then_follows_changes() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    api.create(&PostParams::default(), &config_map("before", "v"))
        .await
        .unwrap();
    let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
    let mut init = Vec::new();
    loop {
        match next(&mut stream).await {
            watcher::Event::Init => {}
            watcher::Event::InitApply(o) => init.push(o.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            other => panic!("unexpected event during init: {other:?}"),
        }
    }
    assert_eq!(init, vec!["before".to_string()]);
    api.create(&PostParams::default(), &config_map("after", "v"))
        .await
        .unwrap();
    match next(&mut stream).await {
        watcher::Event::Apply(o) => assert_eq!(o.metadata.name.as_deref(), Some("after")),
        other => panic!("expected Apply(after), got {other:?}"),
    }
    api.delete("before", &DeleteParams::default())
        .await
        .unwrap();
    match next(&mut stream).await {
        watcher::Event::Delete(o) => assert_eq!(o.metadata.name.as_deref(), Some("before")),
        other => panic!("expected Delete(before), got {other:?}"),
    }
}

#[tokio::test]
async fn runtime_watcher_with_label_selector_sees_only_matching_objects() {
    let s = start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let config = watcher::Config::default().labels("app=web");
    let mut stream = watcher(api.clone(), config).boxed();
    loop {
        if let watcher::Event::InitDone = next(&mut stream).await {
            break;
        }
    }
    for (name, app) in [("db", "db"), ("web", "web")] {
        let cm = ConfigMap {
            metadata: labelled(name, &[("app", app)]),
            ..Default::default()
        };
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    match next(&mut stream).await {
        watcher::Event::Apply(o) => assert_eq!(o.metadata.name.as_deref(), Some("web")),
        other => panic!("expected Apply(web), got {other:?}"),
    }
}
