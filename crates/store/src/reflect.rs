//! [`crate::Store::reflect`]: list, then watch from the list's revision,
//! and start over with a fresh list after any error, backing off from
//! 100 ms up to 2 s while the backend keeps failing.
//!
//! The stream is a state machine driven by the consumer's polls (no task of
//! its own): dropping it stops everything. Errors are logged here and never
//! reach the consumer; objects that do not decode are logged and skipped.

use std::time::Duration;

use api::Object;
use futures::StreamExt;
use serde_json::Value;
use toolkit::Backoff;

use crate::values::{event_from_value, from_value};
use crate::{Change, ChangeStream, Error, Store, WatchStream};

/// First delay after a failure.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest delay between attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(2);

enum Phase {
    /// (Re-)list before watching.
    List,
    /// Watching from the last list.
    Watch(WatchStream<Value>),
}

struct Reflector {
    store: Store,
    namespace: Option<String>,
    phase: Phase,
    /// Delay before the next attempt after a failure.
    backoff: Backoff,
}

impl Reflector {
    /// Log a failure, wait, and go back to listing.
    async fn recover(&mut self, kind: &str, error: &Error) {
        let delay = self.backoff.next_delay();
        tracing::warn!(
            kind,
            namespace = self.namespace.as_deref().unwrap_or(""),
            %error,
            retry_in = ?delay,
            "store reflector: re-listing"
        );
        tokio::time::sleep(delay).await;
        self.phase = Phase::List;
    }
}

pub(crate) fn reflect<T: Object>(store: Store, namespace: Option<String>) -> ChangeStream<T> {
    let reflector = Reflector {
        store,
        namespace,
        phase: Phase::List,
        backoff: Backoff::new(BACKOFF_MIN, BACKOFF_MAX),
    };
    futures::stream::unfold(reflector, |mut r| async move {
        let ty = T::TYPE;
        loop {
            match &mut r.phase {
                Phase::List => match r.store.list_values(&ty, r.namespace.as_deref()).await {
                    Ok(list) => {
                        let items = list
                            .items
                            .into_iter()
                            .filter_map(|value| decode::<T>(value))
                            .collect();
                        let watch =
                            r.store
                                .watch_values(&ty, r.namespace.as_deref(), list.revision);
                        r.phase = Phase::Watch(watch);
                        return Some((Change::Synced(items), r));
                    }
                    Err(e) => r.recover(ty.kind, &e).await,
                },
                Phase::Watch(watch) => match watch.next().await {
                    Some(Ok(event)) => {
                        r.backoff.reset();
                        match event_from_value::<T>(&ty, event) {
                            Ok(event) => return Some((Change::Event(event), r)),
                            Err(e) => tracing::error!(kind = ty.kind, error = %e, "store reflector: skipping object"),
                        }
                    }
                    Some(Err(e)) => r.recover(ty.kind, &e).await,
                    None => {
                        let e = Error::Backend("watch ended".to_string());
                        r.recover(ty.kind, &e).await;
                    }
                },
            }
        }
    })
    .boxed()
}

fn decode<T: Object>(value: Value) -> Option<T> {
    from_value(&T::TYPE, value)
        .inspect_err(|e| tracing::error!(error = %e, "store reflector: skipping object"))
        .ok()
}
