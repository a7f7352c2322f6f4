//! What the client sends and how it reports what it receives, observed on a loopback listener.

mod common;

use std::time::Duration;

use common::stub::{Reply, Stub};
use prefect_client::{Client, Config, Error};

const LIMIT: &str = r#"{"id":"5f5c3a8e-8a1e-4c1c-9a4e-0d3c1a2b3c4d","created":null,"updated":null,"tag":"t","concurrency_limit":2,"active_slots":[]}"#;

#[tokio::test]
async fn api_key_is_sent_as_bearer_with_prefect_headers() {
    let stub = Stub::start(vec![Reply::json(200, LIMIT)]).await;
    let client = Client::builder(&stub.url).api_key("pnu_abc123").build().unwrap();
    let limit = client.concurrency_limits().get_by_tag("t").await.unwrap();
    assert_eq!(limit.concurrency_limit, 2);
    let seen = &stub.requests()[0];
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.path, "/api/concurrency_limits/tag/t");
    assert_eq!(seen.header("authorization"), Some("Bearer pnu_abc123"));
    assert_eq!(
        seen.header("x-prefect-api-version"),
        Some(prefect_client::PREFECT_API_VERSION)
    );
    // Prefect's own form, so the server reads the client's version (it decides how deployment
    // concurrency leases are kept from it); the SDK is the version's local part.
    let agent = seen.header("user-agent").unwrap();
    assert!(
        agent.starts_with("prefect/3.8.8+rs.") && agent.ends_with(" (API 0.8.4)"),
        "{agent}"
    );
    assert_eq!(
        seen.header("api-version"),
        None,
        "progenitor's own header is not sent"
    );
}

#[tokio::test]
async fn auth_string_is_sent_as_basic() {
    let stub = Stub::start(vec![Reply::json(200, "true")]).await;
    let client = Client::builder(&stub.url)
        .auth_string("admin:s3cret")
        .build()
        .unwrap();
    client.health().await.unwrap();
    assert_eq!(
        stub.requests()[0].header("authorization"),
        Some("Basic YWRtaW46czNjcmV0")
    );
}

#[tokio::test]
async fn a_callers_reqwest_client_still_gets_credentials_and_prefects_user_agent() {
    let stub = Stub::start(vec![Reply::json(200, "true")]).await;
    prefect_client::install_tls_provider();
    let http = reqwest::Client::builder()
        .user_agent("my-service/1.0")
        .build()
        .unwrap();
    let client = Client::builder(&stub.url)
        .api_key("k")
        .http_client(http)
        .build()
        .unwrap();
    client.health().await.unwrap();
    let seen = &stub.requests()[0];
    assert_eq!(seen.header("authorization"), Some("Bearer k"));
    // Prefect's form, not the caller's: the server reads the client's release from it, and
    // for a client it cannot read it revokes a deployment run's concurrency lease at RUNNING.
    let agent = seen.header("user-agent").unwrap();
    assert!(agent.starts_with("prefect/3.8.8+rs."), "{agent}");
}

#[tokio::test]
async fn config_from_profile_reaches_the_wire() {
    let stub = Stub::start(vec![Reply::json(200, "true")]).await;
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("profiles.toml"),
        format!(
            "active = 'dev'\n[profiles.dev]\nPREFECT_API_URL = '{}/'\nPREFECT_API_KEY = 'from-profile'\n",
            stub.url
        ),
    )
    .unwrap();
    let home_path = home.path().to_str().unwrap().to_string();
    let config =
        Config::from_lookup(move |name| (name == "PREFECT_HOME").then(|| home_path.clone())).unwrap();
    let client = Client::from_config(config).unwrap();
    client.health().await.unwrap();
    let seen = &stub.requests()[0];
    assert_eq!(
        seen.path, "/api/health",
        "trailing slash of the URL is not doubled"
    );
    assert_eq!(seen.header("authorization"), Some("Bearer from-profile"));
}

#[tokio::test]
async fn timeouts_end_a_stalled_request() {
    let stub = Stub::start(vec![Reply::Stall(Duration::from_secs(30))]).await;
    let client = Client::builder(&stub.url)
        .request_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let err = client.health().await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "timeouts are not retried"
    );
    assert!(err.to_string().contains("PREFECT_API_REQUEST_TIMEOUT"), "{err}");
}

#[tokio::test]
async fn zero_timeouts_are_rejected() {
    let err = Client::builder("http://127.0.0.1:1/api")
        .request_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)));
}

#[test]
fn pinned_versions_agree_between_scripts_and_harness() {
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/prefect-versions.sh"
    ))
    .unwrap();
    let pinned = |name: &str| {
        script
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} missing from prefect-versions.sh"))
            .to_string()
    };
    assert_eq!(pinned("PREFECT_VERSION"), prefect_testkit::PREFECT_VERSION);
    assert_eq!(pinned("FASTAPI_VERSION"), prefect_testkit::FASTAPI_VERSION);
    assert_eq!(
        pinned("SQLALCHEMY_REQUIREMENT").trim_matches('\''),
        prefect_testkit::SQLALCHEMY_REQUIREMENT
    );
}
