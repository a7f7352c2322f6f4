//! The SDK against an older Prefect 3.x server: Prefect 3.4.7, the last release before
//! concurrency leases (3.4.9), started by the harness in a venv of its own.
//!
//! What exists there works; what does not (slot guards need leases) fails at once with
//! `Error::ServerTooOld`, whose message names the release to upgrade to.

mod common;

use std::time::{Duration, Instant};

use prefect_client::{Client, Error};
use prefect_testkit::LocalServer;

use common::{limit_of, new_global_limit, unique};

/// The release before leases, and the packages it needs (newer FastAPI breaks it, and its
/// workers import importlib_metadata without requiring it).
const OLD_PREFECT: &str = "3.4.7";
const OLD_REQUIREMENTS: &[&str] = &["fastapi==0.115.14", "importlib_metadata==10.2.0"];

static SERVER: tokio::sync::OnceCell<LocalServer> = tokio::sync::OnceCell::const_new();

/// One Prefect 3.4.7 server for this file's tests (installed once into its own cached venv).
async fn old_server() -> &'static LocalServer {
    SERVER
        .get_or_init(|| async {
            let builder = LocalServer::builder().prefect_release(OLD_PREFECT, OLD_REQUIREMENTS);
            match builder.start().await {
                Ok(server) => server,
                Err(e) => panic!("cannot start Prefect {OLD_PREFECT}: {e}"),
            }
        })
        .await
}

#[tokio::test]
async fn an_older_server_works_where_it_can_and_names_the_upgrade_where_it_cannot() {
    let server = old_server().await;
    let client = server.client().unwrap();
    assert_eq!(client.server_version().await.unwrap(), OLD_PREFECT);

    // Tag limits (v1), global limits (v2) and rate limits need nothing new.
    let tag = unique("old-tag");
    client.concurrency_limits().create(&tag, 1).await.unwrap();
    let task_run = uuid::Uuid::new_v4();
    client
        .concurrency_limits()
        .increment(&[&tag], task_run)
        .await
        .unwrap();
    assert_eq!(
        client
            .concurrency_limits()
            .get_by_tag(&tag)
            .await
            .unwrap()
            .active_slots,
        vec![task_run]
    );
    client
        .concurrency_limits()
        .decrement(&[&tag], task_run)
        .await
        .unwrap();

    let name = new_global_limit(&client, "old-global", 2).await;
    assert_eq!(limit_of(&client, &name).await, 2);
    let flow = client.flows().create(&unique("old-flow")).await.unwrap();
    assert_eq!(client.flows().get(flow.id).await.unwrap().name, flow.name);
    client
        .variables()
        .set(&unique("old-var"), &serde_json::json!({"a": 1}))
        .await
        .unwrap();

    // Slot guards need leases: a typed error at once, naming the release to upgrade to.
    let started = Instant::now();
    let error = client
        .concurrency([name.as_str()])
        .acquire()
        .await
        .expect_err("no leases on Prefect 3.4.7");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "not retried: {:?}",
        started.elapsed()
    );
    assert!(
        matches!(error, Error::ServerTooOld { since: "3.4.9", .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("upgrade the server to Prefect 3.4.9 or newer"),
        "{message}"
    );
    assert!(message.contains("increment-with-lease"), "{message}");
    assert_eq!(common::active_slots(&client, &name).await, 0, "nothing taken");
}

#[tokio::test]
async fn lease_calls_on_an_older_server_are_server_too_old_not_not_found() {
    let server = old_server().await;
    let client: Client = server.client().unwrap();
    let limits = client.global_concurrency_limits();
    for error in [
        limits
            .renew_lease(uuid::Uuid::new_v4(), Duration::from_secs(60))
            .await
            .unwrap_err(),
        limits
            .decrement_with_lease(uuid::Uuid::new_v4())
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(error, Error::ServerTooOld { .. }), "{error:?}");
        assert!(error.to_string().contains("3.4.9"), "{error}");
    }
}
