//! The behaviour every backend must show. Each test gets a fresh store.

use std::collections::BTreeMap;

use api::Object;
use futures::StreamExt;
use serde_json::json;
use store::{Change, Error, WatchEvent};

use crate::harness::{DEADLINE, Harness, next};
use crate::types::{Gadget, Widget, WidgetStatus};

fn rv<T: Object>(obj: &T) -> i64 {
    let text = obj
        .meta()
        .resource_version
        .as_deref()
        .unwrap_or_else(|| panic!("{} has no resourceVersion", obj.name()));
    text.parse()
        .unwrap_or_else(|e| panic!("resourceVersion {text:?}: {e}"))
}

fn names<T: Object>(items: &[T]) -> Vec<String> {
    items
        .iter()
        .map(|o| format!("{}/{}", o.namespace().unwrap_or(""), o.name()))
        .collect()
}

pub async fn create_get_list(h: Harness) {
    let store = &h.store;
    let created = store
        .create(&Widget::new(None, "a", 1))
        .await
        .expect("create a");
    let meta = &created.metadata;
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    let uid = meta.uid.as_deref().expect("uid");
    assert_eq!(uid.len(), 36, "uid {uid}");
    assert_eq!(&uid[14..15], "4", "uuid v4: {uid}");
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));
    assert!(rv(&created) > 0);

    let got: Widget = store
        .get(Some("default"), "a")
        .await
        .expect("get a")
        .expect("a exists");
    assert_eq!(got, created);
    // A namespaced lookup without namespace means `default`.
    let got_default: Option<Widget> = store.get(None, "a").await.expect("get a");
    assert_eq!(got_default, Some(created.clone()));

    match store.create(&Widget::new(Some("default"), "a", 2)).await {
        Err(Error::AlreadyExists { kind, name }) => {
            assert_eq!((kind.as_str(), name.as_str()), ("Widget", "default/a"));
        }
        other => panic!("second create: expected AlreadyExists, got {other:?}"),
    }
    match store.create(&Widget::new(None, "", 1)).await {
        Err(Error::Invalid(_)) => {}
        other => panic!("create without name: expected Invalid, got {other:?}"),
    }
    match store.create(&Widget::new(None, "a/b", 1)).await {
        Err(Error::Invalid(_)) => {}
        other => panic!("create with '/' in name: expected Invalid, got {other:?}"),
    }
    let missing: Option<Widget> = store.get(Some("default"), "zz").await.expect("get zz");
    assert_eq!(missing, None);

    let b = store
        .create(&Widget::new(Some("other"), "b", 2))
        .await
        .expect("create b");
    let c = store
        .create(&Widget::new(Some("default"), "c", 3))
        .await
        .expect("create c");
    assert!(rv(&b) > rv(&created) && rv(&c) > rv(&b), "revisions grow");
    assert_ne!(b.metadata.uid, created.metadata.uid);

    let all = store.list::<Widget>(None).await.expect("list all");
    assert_eq!(names(&all.items), ["default/a", "default/c", "other/b"]);
    assert!(all.revision >= rv(&c));
    assert_eq!(all.items[1], c);
    let default = store.list::<Widget>(Some("default")).await.expect("list");
    assert_eq!(names(&default.items), ["default/a", "default/c"]);
    let empty = store.list::<Widget>(Some("nothing")).await.expect("list");
    assert!(empty.items.is_empty());
    // Other types do not show up.
    assert!(
        store
            .list::<Gadget>(None)
            .await
            .expect("list")
            .items
            .is_empty()
    );
}

pub async fn cluster_scoped(h: Harness) {
    let store = &h.store;
    let mut gadget = Gadget::new("g");
    gadget.metadata.namespace = Some("ignored".into());
    let created = store.create(&gadget).await.expect("create g");
    assert_eq!(created.metadata.namespace, None);
    let got: Gadget = store.get(None, "g").await.expect("get").expect("g exists");
    assert_eq!(got, created);
    let got_ns: Option<Gadget> = store.get(Some("x"), "g").await.expect("get");
    assert_eq!(got_ns, Some(created));
    let list = store.list::<Gadget>(None).await.expect("list");
    assert_eq!(names(&list.items), ["/g"]);
}

pub async fn update_compare_and_swap(h: Harness) {
    let store = &h.store;
    let created = store
        .create(&Widget::new(None, "a", 1))
        .await
        .expect("create");

    // Status change: new revision, same generation; uid and
    // creationTimestamp are kept even if the caller changes them.
    let mut status = created.clone();
    status.status = Some(WidgetStatus { ready: true });
    status.metadata.uid = Some("forged".into());
    status.metadata.creation_timestamp = None;
    status.metadata.generation = Some(42);
    let updated = store.update(&status).await.expect("update status");
    assert!(rv(&updated) > rv(&created));
    assert_eq!(updated.metadata.uid, created.metadata.uid);
    assert_eq!(
        updated.metadata.creation_timestamp,
        created.metadata.creation_timestamp
    );
    assert_eq!(updated.metadata.generation, Some(1));
    assert_eq!(updated.status, Some(WidgetStatus { ready: true }));

    // Spec change bumps generation.
    let mut spec = updated.clone();
    spec.spec.size = 5;
    let updated2 = store.update(&spec).await.expect("update spec");
    assert_eq!(updated2.metadata.generation, Some(2));
    let got: Widget = store.get(None, "a").await.expect("get").expect("exists");
    assert_eq!(got, updated2);

    // Stale resourceVersion: conflict, nothing written.
    let mut stale = updated.clone();
    stale.spec.size = 9;
    match store.update(&stale).await {
        Err(Error::Conflict { expected, name, .. }) => {
            assert_eq!(expected, rv(&updated).to_string());
            assert_eq!(name, "default/a");
        }
        other => panic!("stale update: expected Conflict, got {other:?}"),
    }
    let got: Widget = store.get(None, "a").await.expect("get").expect("exists");
    assert_eq!(got.spec.size, 5);

    // Writing back what was read changes nothing.
    let same = store.update(&got).await.expect("no-op update");
    assert_eq!(rv(&same), rv(&got));

    let mut no_rv = got.clone();
    no_rv.metadata.resource_version = None;
    match store.update(&no_rv).await {
        Err(Error::Invalid(_)) => {}
        other => panic!("update without resourceVersion: expected Invalid, got {other:?}"),
    }
    let mut absent = got.clone();
    absent.metadata.name = Some("absent".into());
    match store.update(&absent).await {
        Err(Error::NotFound { kind, name }) => {
            assert_eq!((kind.as_str(), name.as_str()), ("Widget", "default/absent"));
        }
        other => panic!("update of missing object: expected NotFound, got {other:?}"),
    }
}

pub async fn modify_retries_conflicts(h: Harness) {
    let store = &h.store;
    let created = store
        .create(&Widget::new(Some("ns"), "counter", 0))
        .await
        .expect("create");

    // Concurrent increments: every one lands thanks to retries.
    const TASKS: i64 = 4;
    const INCREMENTS: i64 = 5;
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..INCREMENTS {
                store
                    .modify::<Widget>(Some("ns"), "counter", |w| {
                        w.spec.size += 1;
                        true
                    })
                    .await
                    .expect("modify");
            }
        }));
    }
    for task in tasks {
        task.await.expect("modify task");
    }
    let got: Widget = store
        .get(Some("ns"), "counter")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got.spec.size, TASKS * INCREMENTS);
    assert_eq!(got.metadata.generation, Some(1 + TASKS * INCREMENTS));
    assert_eq!(got.metadata.uid, created.metadata.uid);

    // `false` writes nothing.
    let unchanged = store
        .modify::<Widget>(Some("ns"), "counter", |w| {
            w.spec.size = -1;
            false
        })
        .await
        .expect("modify without change");
    assert_eq!(rv(&unchanged), rv(&got));
    assert_eq!(unchanged.spec.size, TASKS * INCREMENTS);

    match store.modify::<Widget>(Some("ns"), "absent", |_| true).await {
        Err(Error::NotFound { name, .. }) => assert_eq!(name, "ns/absent"),
        other => panic!("modify of missing object: expected NotFound, got {other:?}"),
    }
}

pub async fn delete_returns_last_state(h: Harness) {
    let store = &h.store;
    let created = store
        .create(&Widget::new(None, "a", 7))
        .await
        .expect("create");
    let deleted: Widget = store
        .delete(None, "a")
        .await
        .expect("delete")
        .expect("a existed");
    assert_eq!(deleted.spec.size, 7);
    assert_eq!(deleted.metadata.uid, created.metadata.uid);
    assert!(rv(&deleted) > rv(&created), "deletion revision");
    let again: Option<Widget> = store.delete(None, "a").await.expect("delete again");
    assert_eq!(again, None);
    let got: Option<Widget> = store.get(None, "a").await.expect("get");
    assert_eq!(got, None);
    // The name can be used again.
    let recreated = store
        .create(&Widget::new(None, "a", 8))
        .await
        .expect("re-create");
    assert_ne!(recreated.metadata.uid, created.metadata.uid);
}

pub async fn watch_in_order(h: Harness) {
    let store = &h.store;
    let start = store.list::<Widget>(None).await.expect("list").revision;
    let mut watch = store.watch::<Widget>(None, start);

    let a = store
        .create(&Widget::new(None, "a", 1))
        .await
        .expect("create a");
    let a2 = store
        .modify::<Widget>(None, "a", |w| {
            w.spec.size = 2;
            true
        })
        .await
        .expect("modify a");
    let b = store
        .create(&Widget::new(Some("x"), "b", 1))
        .await
        .expect("create b");
    store
        .create(&Gadget::new("g"))
        .await
        .expect("create gadget");
    let gone = store
        .delete::<Widget>(None, "a")
        .await
        .expect("delete a")
        .expect("a existed");

    let expected = [
        WatchEvent::Added(a.clone()),
        WatchEvent::Modified(a2.clone()),
        WatchEvent::Added(b.clone()),
        WatchEvent::Deleted(gone.clone()),
    ];
    for want in &expected {
        let got = next(&mut watch, "watch event").await.expect("watch event");
        assert_eq!(&got, want);
    }
    // The deletion carries the last state.
    let WatchEvent::Deleted(last) = &expected[3] else {
        unreachable!()
    };
    assert_eq!(last.spec.size, 2);

    // Watching from a later revision replays only what follows it.
    let mut later = store.watch::<Widget>(None, rv(&a2));
    assert_eq!(
        next(&mut later, "replayed event").await.expect("event"),
        WatchEvent::Added(b)
    );
    assert_eq!(
        next(&mut later, "replayed event").await.expect("event"),
        WatchEvent::Deleted(gone)
    );
    // And nothing else until a new change.
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(200), later.next())
            .await
            .is_err(),
        "unexpected extra event"
    );
}

pub async fn watch_filters_namespace(h: Harness) {
    let store = &h.store;
    let mut watch = store.watch::<Widget>(Some("x"), 0);
    store
        .create(&Widget::new(Some("y"), "a", 1))
        .await
        .expect("create y/a");
    let xa = store
        .create(&Widget::new(Some("x"), "a", 1))
        .await
        .expect("create x/a");
    // A namespace whose name extends "x" must not leak in.
    store
        .create(&Widget::new(Some("xx"), "a", 1))
        .await
        .expect("create xx/a");
    let xb = store
        .create(&Widget::new(Some("x"), "b", 1))
        .await
        .expect("create x/b");
    assert_eq!(
        next(&mut watch, "x/a").await.expect("event"),
        WatchEvent::Added(xa)
    );
    assert_eq!(
        next(&mut watch, "x/b").await.expect("event"),
        WatchEvent::Added(xb)
    );
}

/// Apply reflector output to a cache; count snapshots.
#[derive(Default)]
pub struct Cache {
    objects: BTreeMap<String, i64>,
    syncs: usize,
}

impl Cache {
    fn apply(&mut self, change: Change<Widget>) {
        let key = |w: &Widget| format!("{}/{}", w.namespace().unwrap_or(""), w.name());
        match change {
            Change::Synced(items) => {
                self.syncs += 1;
                self.objects = items.iter().map(|w| (key(w), w.spec.size)).collect();
            }
            Change::Event(WatchEvent::Added(w) | WatchEvent::Modified(w)) => {
                self.objects.insert(key(&w), w.spec.size);
            }
            Change::Event(WatchEvent::Deleted(w)) => {
                self.objects.remove(&key(&w));
            }
        }
    }

    /// Feed changes until the cache holds `want` (and at least
    /// `min_syncs` snapshots were seen).
    pub async fn converge(
        &mut self,
        changes: &mut store::ChangeStream<Widget>,
        want: &[(&str, i64)],
        min_syncs: usize,
    ) {
        let want: BTreeMap<String, i64> = want.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while self.objects != want || self.syncs < min_syncs {
            let change = tokio::time::timeout_at(deadline, changes.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "reflector did not converge to {want:?} with {min_syncs} snapshots \
                         (have {:?}, {} snapshots)",
                        self.objects, self.syncs
                    )
                })
                .expect("reflect never ends");
            self.apply(change);
        }
    }
}

pub async fn reflect_resyncs(mut h: Harness) {
    let store = h.store.clone();
    store
        .create(&Widget::new(None, "a", 1))
        .await
        .expect("create a");
    let mut changes = store.reflect::<Widget>(None);
    match next(&mut changes, "first snapshot").await {
        Change::Synced(items) => assert_eq!(names(&items), ["default/a"]),
        other => panic!("first change must be Synced, got {other:?}"),
    }
    let mut cache = Cache {
        objects: [("default/a".to_string(), 1)].into(),
        syncs: 1,
    };

    store
        .create(&Widget::new(None, "b", 2))
        .await
        .expect("create b");
    match next(&mut changes, "event for b").await {
        Change::Event(WatchEvent::Added(w)) => assert_eq!(w.name(), "b"),
        other => panic!("expected Added(b), got {other:?}"),
    }
    cache.apply(Change::Event(WatchEvent::Added(Widget::new(
        Some("default"),
        "b",
        2,
    ))));

    // Break the watch while changes happen; the reflector re-lists.
    h.disrupt().await;
    store
        .modify::<Widget>(None, "a", |w| {
            w.spec.size = 10;
            true
        })
        .await
        .expect("modify a after disruption");
    store.delete::<Widget>(None, "b").await.expect("delete b");
    cache.converge(&mut changes, &[("default/a", 10)], 2).await;

    // And keeps watching afterwards.
    store
        .create(&Widget::new(None, "c", 3))
        .await
        .expect("create c");
    cache
        .converge(&mut changes, &[("default/a", 10), ("default/c", 3)], 2)
        .await;
}

pub async fn untyped_values(h: Harness) {
    let store = &h.store;
    let ty = Widget::TYPE;
    let created = store
        .create_value(
            &ty,
            &json!({"metadata": {"name": "v", "resourceVersion": "999"}, "spec": {"size": 3}, "extra": true}),
        )
        .await
        .expect("create value");
    assert_eq!(created["apiVersion"], "test.example/v1");
    assert_eq!(created["kind"], "Widget");
    assert_eq!(created["metadata"]["namespace"], "default");
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(created["extra"], true, "unknown fields are kept");
    let rv1: i64 = created["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv string")
        .parse()
        .expect("rv number");
    assert_ne!(rv1, 999, "the stored resourceVersion is the store's");

    // The typed view of the same object.
    let typed: Widget = store.get(None, "v").await.expect("get").expect("exists");
    assert_eq!(typed.spec.size, 3);
    assert_eq!(rv(&typed), rv1);

    let got = store
        .get_value(&ty, Some("default"), "v")
        .await
        .expect("get value")
        .expect("exists");
    assert_eq!(got, created);

    let mut changed = got.clone();
    changed["spec"]["size"] = json!(4);
    let updated = store.update_value(&ty, &changed).await.expect("update");
    assert_eq!(updated["metadata"]["generation"], 2);
    match store.update_value(&ty, &changed).await {
        Err(Error::Conflict { .. }) => {}
        other => panic!("stale untyped update: expected Conflict, got {other:?}"),
    }
    match store.create_value(&ty, &json!({"spec": {}})).await {
        Err(Error::Invalid(_)) => {}
        other => panic!("create without metadata: expected Invalid, got {other:?}"),
    }
    match store.create_value(&ty, &json!([1, 2])).await {
        Err(Error::Invalid(_)) => {}
        other => panic!("create of an array: expected Invalid, got {other:?}"),
    }

    let list = store.list_values(&ty, None).await.expect("list values");
    assert_eq!(list.items, std::slice::from_ref(&updated));

    let mut watch = store.watch_values(&ty, None, list.revision);
    let deleted = store
        .delete_value(&ty, None, "v")
        .await
        .expect("delete")
        .expect("existed");
    assert_eq!(deleted["spec"]["size"], 4);
    match next(&mut watch, "deletion").await.expect("event") {
        WatchEvent::Deleted(v) => assert_eq!(v, deleted),
        other => panic!("expected Deleted, got {other:?}"),
    }
    assert_eq!(
        store.delete_value(&ty, None, "v").await.expect("delete"),
        None
    );
}
