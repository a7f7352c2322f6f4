//! API keys and auth strings never show: not in Debug or Display of the client, its settings
//! or its errors, and not in tracing output at the most verbose level.

mod common;

use std::time::Duration;

use common::Captured;
use common::stub::{Reply, Stub};
use prefect_client::Client;

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
    let _default = common::set_test_subscriber(subscriber);

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
        Client::builder(&stub.url).auth_string(AUTH).build().unwrap(),
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

/// Every `log` record (tungstenite and hyper log through `log`, not `tracing`).
struct LogCapture(Captured);

impl log::Log for LogCapture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        use std::io::Write;
        let _ = writeln!(self.0.clone(), "{} {}", record.target(), record.args());
    }
    fn flush(&self) {}
}

#[tokio::test]
async fn no_secret_in_websocket_traces() {
    use futures_util::StreamExt;
    let (captured, _default) = common::capture_traces();
    let _ = log::set_boxed_logger(Box::new(LogCapture(captured.clone())));
    log::set_max_level(log::LevelFilter::Trace);

    let server = prefect_testkit::LocalServer::builder()
        .env("PREFECT_SERVER_API_AUTH_STRING", AUTH)
        .start()
        .await
        .unwrap();
    let client = Client::builder(server.api_url())
        .auth_string(AUTH)
        .build()
        .unwrap();
    let mut events = client
        .events()
        .subscribe(Default::default())
        .await
        .expect("the right credentials subscribe");
    client
        .events()
        .emit("rust.test.hygiene", "rust.test.hygiene")
        .send()
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(20), events.next()).await;
    assert!(matches!(first, Ok(Some(Ok(_)))), "an event arrives");
    let emitter = client.events().emitter().await.unwrap();
    emitter.close().await.unwrap();
    let wrong = Client::builder(server.api_url())
        .auth_string("admin:WRONG_SHOULD_NEVER_SHOW")
        .build()
        .unwrap();
    let error = wrong.events().subscribe(Default::default()).await.unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("SHOULD_NEVER_SHOW"), "{shown}");

    let output = String::from_utf8_lossy(&captured.0.lock().unwrap()).to_string();
    assert!(output.contains("frame"), "frame-level traces were captured");
    let hex = |secret: &str| secret.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    for secret in [AUTH, "admin:WRONG_SHOULD_NEVER_SHOW"] {
        assert!(!output.contains(secret), "a secret in the traces");
        assert!(
            !output.contains(&hex(secret)),
            "a hex-encoded secret in the traces"
        );
    }
    assert!(!output.contains("SHOULD_NEVER_SHOW"));
}
