//! Memory-backend specifics: the bounded event log.

use store::{Error, Store};

use crate::harness::next;
use crate::types::Widget;

#[tokio::test]
async fn watch_behind_the_log_is_compacted() {
    let store = Store::memory_with_history(2);
    for i in 0..5 {
        store
            .create(&Widget::new(None, &format!("w{i}"), i))
            .await
            .expect("create");
    }
    let mut old = store.watch::<Widget>(None, 0);
    match next(&mut old, "compaction error").await {
        Err(Error::Compacted(0)) => {}
        other => panic!("expected Compacted(0), got {other:?}"),
    }
    assert!(
        futures::StreamExt::next(&mut old).await.is_none(),
        "the watch ends after its error"
    );
    // The last two changes are still there.
    let mut recent = store.watch::<Widget>(None, 3);
    let event = next(&mut recent, "event 4").await.expect("event");
    assert!(format!("{event:?}").contains("w3"), "{event:?}");
}
