//! etcd specifics: endpoints, connection failures, mutual TLS,
//! compaction, and a reflector that waits for etcd and survives its
//! restarts.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use store::testing::EtcdServer;
use store::{Change, Error, EtcdConfig, EtcdTls, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
        vec!["http://127.0.0.1".to_string()],
        vec!["http://127.0.0.1:2379".into(), "unixs:///x".into()],
    ] {
        match Store::etcd_lazy(&endpoints).await {
            Err(Error::Backend(_)) => {}
            other => panic!("{endpoints:?}: expected a Backend error, got {other:?}"),
        }
    }
}

/// TLS endpoints need TLS files and plaintext ones refuse them; a file
/// that cannot be read is named.
#[tokio::test]
async fn tls_settings_must_match_the_endpoints() {
    let tls = EtcdTls {
        trusted_ca_file: "/nonexistent/ca.crt".into(),
        cert_file: "/nonexistent/c.crt".into(),
        key_file: "/nonexistent/c.key".into(),
    };
    async fn message(config: EtcdConfig) -> String {
        match Store::etcd_with(&config).await {
            Err(Error::Backend(message)) => message,
            other => panic!("{config:?}: expected a Backend error, got {other:?}"),
        }
    }
    let https = vec!["https://127.0.0.1:2379".to_string()];
    assert!(
        message(EtcdConfig::plain(&https))
            .await
            .contains("need TLS files")
    );
    let plaintext = EtcdConfig {
        endpoints: vec!["http://127.0.0.1:2379".into()],
        tls: Some(tls.clone()),
    };
    assert!(
        message(plaintext)
            .await
            .contains("TLS files given for plaintext endpoints")
    );
    let missing = EtcdConfig {
        endpoints: https,
        tls: Some(tls),
    };
    assert!(message(missing).await.contains("/nonexistent/ca.crt"));
}

/// With mutual TLS, the TCP port and the socket serve clients that
/// present a certificate of the cluster's CA, and no one else: not a
/// plaintext client, not a TLS client without a certificate, not one with
/// a certificate of another CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd (installed by scripts/setup.sh); run by make test"]
async fn mtls_serves_only_certified_clients() {
    let etcd = tokio::task::spawn_blocking(EtcdServer::start_mtls)
        .await
        .expect("start etcd");
    let config = etcd.config();
    let store = Store::etcd_with(&config).await.expect("https");
    store
        .create(&Widget::new(None, "a", 1))
        .await
        .expect("create");
    let unix = EtcdConfig {
        endpoints: vec![etcd.unix_endpoint.clone()],
        ..config.clone()
    };
    let store = Store::etcd_with(&unix).await.expect("unixs");
    assert!(store.get::<Widget>(None, "a").await.unwrap().is_some());

    let plaintext = etcd.endpoint.replace("https://", "http://");
    assert!(Store::etcd(&[plaintext]).await.is_err());

    let tls = config.tls.clone().expect("mutual TLS");
    let stranger = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = pki::Ca::generate("another-ca")
        .unwrap()
        .issue(&pki::Leaf::client("stranger", &[]))
        .unwrap()
        .write(stranger.path(), "client")
        .unwrap();
    for endpoint in [&etcd.endpoint, &etcd.unix_endpoint] {
        let foreign = EtcdConfig {
            endpoints: vec![endpoint.clone()],
            tls: Some(EtcdTls {
                cert_file: cert_file.clone(),
                key_file: key_file.clone(),
                ..tls.clone()
            }),
        };
        match Store::etcd_with(&foreign).await {
            Err(Error::Backend(message)) => assert!(message.contains(endpoint), "{message}"),
            other => panic!("{endpoint}: a foreign certificate was accepted: {other:?}"),
        }
    }

    let answer = health_without_certificate(&etcd.endpoint, &tls.trusted_ca_file).await;
    assert!(
        answer.is_err(),
        "answered without a certificate: {answer:?}"
    );
}

/// `GET /health` over TLS with no client certificate: the reply, or why
/// there is none.
async fn health_without_certificate(endpoint: &str, ca_file: &Path) -> Result<String, String> {
    let ca = std::fs::read_to_string(ca_file).unwrap();
    let config = Arc::new(pki::client_config(&ca, None).unwrap());
    let addr = endpoint.trim_start_matches("https://");
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let exchange = async {
        let mut tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        tls.write_all(b"GET /health HTTP/1.0\r\n\r\n").await?;
        let mut reply = String::new();
        tls.read_to_string(&mut reply).await?;
        Ok::<_, std::io::Error>(reply)
    };
    match exchange.await {
        Ok(reply) if reply.contains("health") => Ok(reply),
        Ok(reply) => Err(format!("no answer: {reply:?}")),
        Err(e) => Err(e.to_string()),
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
