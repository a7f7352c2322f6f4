//! Arbitrary bytes decoded as the main response types, and as settings: never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prefect_client::types;

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) {
    let _ = serde_json::from_slice::<T>(bytes);
    let _ = serde_json::from_slice::<Vec<T>>(bytes);
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    match selector % 14 {
        0 => decode::<types::ConcurrencyLimit>(body),
        1 => decode::<types::GlobalConcurrencyLimitResponse>(body),
        2 => decode::<types::ConcurrencyLimitWithLeaseResponse>(body),
        3 => decode::<types::FlowRunResponse>(body),
        4 => decode::<types::DeploymentResponse>(body),
        5 => decode::<types::Flow>(body),
        6 => decode::<types::Variable>(body),
        7 => decode::<types::Log>(body),
        8 => decode::<types::Artifact>(body),
        9 => decode::<types::Event>(body),
        10 => decode::<types::State>(body),
        11 => decode::<types::Automation>(body),
        12 => decode::<types::WorkQueueResponse>(body),
        _ => {
            // Settings as a user could write them: any text for any setting.
            let text = String::from_utf8_lossy(body);
            let mut parts = text.splitn(2, '\n');
            let (url, other) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let _ = prefect_client::Config::from_lookup(|name| match name {
                "PREFECT_API_URL" => Some(url.to_string()),
                "PREFECT_HOME" => Some("/nonexistent".to_string()),
                "PREFECT_API_REQUEST_TIMEOUT"
                | "PREFECT_CLIENT_MAX_RETRIES"
                | "PREFECT_CLIENT_RETRY_EXTRA_CODES"
                | "PREFECT_API_TLS_INSECURE_SKIP_VERIFY" => Some(other.to_string()),
                _ => None,
            });
        }
    }
});
