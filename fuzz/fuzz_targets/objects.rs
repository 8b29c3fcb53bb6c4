//! One object as JSON (the store's values, request bodies), decoded by
//! kind and validated.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = api::decode_object(value);
    }
});
