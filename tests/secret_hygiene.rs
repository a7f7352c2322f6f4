//! API keys and auth strings never show: not in Debug or Display of the client, its settings
//! or its errors, and not in tracing output at the most verbose level.

mod common;

use std::time::Duration;

use common::Captured;
use common::stub::{Reply, Stub};
use prefect_client::{Client, Config};

const KEY: &str = "pnu_k3y_SHOULD_NEVER_SHOW";
const AUTH: &str = "admin:pa55_SHOULD_NEVER_SHOW";

#[tokio::test]
async fn no_secret_in_debug_display_or_traces() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let stub = Stub::start(vec![
        Reply::json(503, r#"{"exception_message":"Service Unavailable"}"#),
        Reply::json(401, r#"{"detail":"Invalid API key"}"#),
    ])
    .await;
    let mut shown = Vec::new();
    for client in [
        Client::builder(&stub.url)
            .api_key(KEY)
            .request_timeout(Duration::from_secs(2))
            .build()
            .unwrap(),
        Client::from_config(Config::new(&stub.url).unwrap().with_auth_string(AUTH)).unwrap(),
    ] {
        let err = client.concurrency_limits().get_by_tag("t").await.unwrap_err();
        shown.push(format!("{client:?} {:?} {err} {err:?}", client.config()));
    }
    // A key that cannot be a header value is reported without being echoed.
    let bad = Client::builder(&stub.url)
        .api_key(format!("{KEY}\n"))
        .build()
        .unwrap_err();
    shown.push(format!("{bad} {bad:?}"));

    let traces = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        traces.contains("prefect.request"),
        "the request spans were captured: {traces}"
    );
    assert!(
        traces.contains("read_concurrency_limit_by_tag") && traces.contains("attempts=2"),
        "{traces}"
    );
    for text in shown.iter().chain([&traces]) {
        for secret in ["SHOULD_NEVER_SHOW", "YWRtaW46cGE1NV9TSE9VTERfTkVWRVJfU0hPVw"] {
            assert!(!text.contains(secret), "a secret leaked: {text}");
        }
    }
    // The requests did carry the credentials.
    let requests = stub.requests();
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
}
