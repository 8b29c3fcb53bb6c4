//! Bearer tokens presented to the API server: parsed from the
//! Authorization header and verified as service-account JWTs.
#![no_main]

use std::sync::LazyLock;

use controlplane::apiserver::authn::{self, ServiceAccountTokens};
use libfuzzer_sys::fuzz_target;

static TOKENS: LazyLock<ServiceAccountTokens> =
    LazyLock::new(|| ServiceAccountTokens::generate(authn::DEFAULT_ISSUER, &[]).expect("key"));

fuzz_target!(|data: &[u8]| {
    let header = String::from_utf8_lossy(data);
    if let Some(token) = authn::bearer_token(&header) {
        let _ = TOKENS.verify(token, jiff::Timestamp::UNIX_EPOCH);
    }
    let _ = TOKENS.verify(&header, jiff::Timestamp::UNIX_EPOCH);
});
