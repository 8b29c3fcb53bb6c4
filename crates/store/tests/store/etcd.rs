//! etcd specifics: endpoints, connection failures, compaction, and a
//! reflector that waits for etcd and survives its restarts.

use std::time::{Duration, Instant};

use futures::StreamExt;
use store::{Change, Error, Store};

use crate::harness::{next, start_etcd};
use crate::suite::Cache;
use crate::types::Widget;

/// A refused endpoint fails with a clear error, quickly.
#[tokio::test]
async fn unreachable_endpoint_fails_fast() {
    // Port 1 on loopback: nothing listens there.
    for endpoint in ["http://127.0.0.1:1", "unix:///nonexistent/etcd.sock:0"] {
        let started = Instant::now();
        match Store::etcd(&[endpoint.to_string()]).await {
            Err(Error::Backend(message)) => {
                assert!(
                    message.contains(endpoint),
                    "message should name the endpoint: {message}"
                );
            }
            other => panic!("{endpoint}: expected a Backend error, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{endpoint}: took {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn bad_endpoints_are_rejected() {
    for endpoints in [
        vec![],
        vec!["ftp://x".to_string()],
        vec!["unix://".to_string()],
    ] {
        match Store::etcd_lazy(&endpoints).await {
            Err(Error::Backend(_)) => {}
            other => panic!("{endpoints:?}: expected a Backend error, got {other:?}"),
        }
    }
}

/// A raw watch reports a compacted start revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd (installed by scripts/setup.sh); run by make test"]
async fn watch_of_compacted_revision_fails() {
    let etcd = start_etcd().await;
    let store = Store::etcd(&etcd.endpoints()).await.expect("connect");
    for i in 0..3 {
        store
            .create(&Widget::new(None, &format!("w{i}"), i))
            .await
            .expect("create");
    }
    let revision = store.list::<Widget>(None).await.expect("list").revision;
    let mut client = etcd_client::Client::connect(etcd.endpoints(), None)
        .await
        .expect("etcd client");
    client.compact(revision, None).await.expect("compact");
    let mut watch = store.watch::<Widget>(None, 1);
    match next(&mut watch, "compaction error").await {
        Err(Error::Compacted(1)) => {}
        other => panic!("expected Compacted(1), got {other:?}"),
    }
    assert!(
        watch.next().await.is_none(),
        "the watch ends after its error"
    );
}

/// A raw watch ends with an error when etcd goes away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd (installed by scripts/setup.sh); run by make test"]
async fn watch_reports_lost_connection() {
    let mut etcd = start_etcd().await;
    let store = Store::etcd(&etcd.endpoints()).await.expect("connect");
    let mut watch = store.watch::<Widget>(None, 0);
    store
        .create(&Widget::new(None, "a", 1))
        .await
        .expect("create");
    next(&mut watch, "Added").await.expect("event");
    etcd.stop();
    match next(&mut watch, "error").await {
        Err(Error::Backend(message)) => assert!(message.contains(&etcd.endpoint), "{message}"),
        other => panic!("expected a Backend error, got {other:?}"),
    }
    // Requests fail while etcd is down, with the endpoint in the message.
    match store.get::<Widget>(None, "a").await {
        Err(Error::Backend(message)) => assert!(message.contains(&etcd.endpoint), "{message}"),
        other => panic!("expected a Backend error, got {other:?}"),
    }
}

/// A reflector started while etcd is down delivers its first snapshot once
/// etcd is up, then events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd (installed by scripts/setup.sh); run by make test"]
async fn reflect_waits_for_etcd() {
    let mut etcd = start_etcd().await;
    etcd.stop();
    let store = Store::etcd_lazy(std::slice::from_ref(&etcd.unix_endpoint))
        .await
        .expect("lazy store");
    let mut changes = store.reflect::<Widget>(None);
    // Nothing can come while etcd is down (this also lets the reflector
    // fail a few times).
    assert!(
        tokio::time::timeout(Duration::from_millis(300), changes.next())
            .await
            .is_err(),
        "a change arrived while etcd was down"
    );
    let etcd = tokio::task::spawn_blocking(move || {
        etcd.restart();
        etcd
    })
    .await
    .expect("restart etcd");
    match next(&mut changes, "snapshot").await {
        Change::Synced(items) => assert!(items.is_empty(), "{items:?}"),
        other => panic!("expected Synced, got {other:?}"),
    }
    store
        .create(&Widget::new(None, "a", 1))
        .await
        .expect("create");
    let mut cache = Cache::default();
    cache.converge(&mut changes, &[("default/a", 1)], 0).await;
    drop(etcd);
}
