#![no_main]
//! The collector's query path: the limits check, then tantivy's grammar and the
//! embedded store's query building and search, on a small store. No input may crash
//! it; every refusal must be a bad request, never a failure.

use std::sync::OnceLock;
use std::time::Duration;

use picket_collector::stores::embedded::EmbeddedStore;
use picket_collector::stores::{SearchRequest, guarded_search};

fn store() -> &'static EmbeddedStore {
    static STORE: OnceLock<(tempfile::TempDir, EmbeddedStore)> = OnceLock::new();
    &STORE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let store =
                EmbeddedStore::open(dir.path(), Duration::from_millis(10), 15_000_000).unwrap();
            let runtime = tokio_runtime();
            let events: Vec<mozdef::Event> = [
                r#"{"summary":"Failed password for root","hostname":"web1","details":{"username":"root","sourceport":22,"success":false}}"#,
                r#"{"summary":"Accepted publickey","hostname":"db-2","category":"authentication","details":{"username":"alice","sourceipaddress":"10.0.0.1"}}"#,
            ]
            .iter()
            .map(|t| mozdef::normalize(serde_json::from_str(t).unwrap(), chrono::Utc::now()).unwrap())
            .collect();
            runtime.block_on(store.store(events)).unwrap();
            (dir, store)
        })
        .1
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let request = SearchRequest {
        query: query.to_string(),
        size: 5,
        ..Default::default()
    };
    if let Err(e) = guarded_search(store(), &request) {
        assert!(e.is_bad_request(), "{query:?}: {e}");
    }
});
