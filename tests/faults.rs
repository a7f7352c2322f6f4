//! Misbehaving servers, played by a loopback stub: every failure ends in bounded time in a typed
//! error that says what to do, retries happen only where they cannot duplicate work, and no
//! secret shows.

mod common;

use std::time::{Duration, Instant};

use common::stub::{Reply, Stub};
use common::unreachable_server;
use prefect_client::{Client, Error};

const LIMIT: &str = r#"{"id":"5f5c3a8e-8a1e-4c1c-9a4e-0d3c1a2b3c4d","created":null,"updated":null,"tag":"t","concurrency_limit":2,"active_slots":[]}"#;
const V2: &str = r#"{"id":"5f5c3a8e-8a1e-4c1c-9a4e-0d3c1a2b3c4d","created":null,"updated":null,"active":true,"name":"n","limit":1,"active_slots":0,"denied_slots":0,"slot_decay_per_second":0.0,"avg_slot_occupancy_seconds":2.0}"#;
const KEY: &str = "pnu_TOPSECRETKEY42";

fn client(stub: &Stub) -> Client {
    Client::builder(&stub.url)
        .api_key(KEY)
        .request_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

/// Reads the tag limit `t` through `stub` with the test's client.
async fn read_limit(stub: &Stub) -> Result<prefect_client::types::ConcurrencyLimit, Error> {
    client(stub).concurrency_limits().get_by_tag("t").await
}

/// Creates the global limit `n` of one slot: a request that is not repeatable once sent.
async fn create_limit(client: &Client) -> Result<prefect_client::types::ConcurrencyLimitV2, Error> {
    client.global_concurrency_limits().create("n", 1).send().await
}

fn unavailable() -> Reply {
    Reply::json(503, r#"{"exception_message":"Service Unavailable"}"#)
}

#[tokio::test]
async fn a_burst_of_503s_is_ridden_out() {
    let stub = Stub::start(vec![
        unavailable(),
        unavailable(),
        unavailable(),
        Reply::json(200, LIMIT),
    ])
    .await;
    let limit = read_limit(&stub).await.unwrap();
    assert_eq!(limit.concurrency_limit, 2);
    assert_eq!(stub.requests().len(), 4);
}

#[tokio::test]
async fn a_503_storm_past_the_budget_ends_in_a_server_error() {
    let stub = Stub::start(vec![unavailable()]).await;
    let client = Client::builder(&stub.url).max_retries(2).build().unwrap();
    let started = Instant::now();
    let err = client.concurrency_limits().get_by_tag("t").await.unwrap_err();
    assert!(err.is_server() && err.is_transient(), "{err:?}");
    assert_eq!(stub.requests().len(), 3, "one try and two retries");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn retry_after_is_honoured_and_a_long_one_returned() {
    let stub = Stub::start(vec![
        Reply::json(429, r#"{"detail":"slow down"}"#).header("retry-after", "0.4"),
        Reply::json(200, LIMIT),
    ])
    .await;
    let started = Instant::now();
    read_limit(&stub).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "waited the server's Retry-After"
    );

    let stub = Stub::start(vec![
        Reply::json(429, r#"{"detail":"slow down"}"#).header("retry-after", "3600"),
    ])
    .await;
    let started = Instant::now();
    let err = read_limit(&stub).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "an hour is not waited"
    );
    let Error::RateLimited { retry_after, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*retry_after, Some(Duration::from_secs(3600)));
}

#[tokio::test]
async fn a_connection_idle_past_the_servers_keep_alive_is_not_reused() {
    // Prefect's server (uvicorn) closes connections idle for 5 s. A create sent on such a
    // connection as it closes would be lost and not repeated; the client must not reuse it.
    let stub = Stub::start_with_keep_alive(
        vec![Reply::json(201, V2), Reply::json(201, V2)],
        Duration::from_secs(5),
    )
    .await;
    let client = client(&stub);
    create_limit(&client).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5_200)).await;
    create_limit(&client)
        .await
        .expect("sent on a fresh connection, not the one the server closed");
    assert_eq!(stub.requests().len(), 2);
}

#[tokio::test]
async fn a_reset_read_is_retried() {
    let stub = Stub::start(vec![Reply::Reset, Reply::json(200, LIMIT)]).await;
    read_limit(&stub).await.unwrap();
    assert_eq!(stub.requests().len(), 2);
}

#[tokio::test]
async fn a_reset_create_is_not_repeated() {
    // The server may have created the limit before the connection broke: a retry could create
    // a second one, so the error comes back instead.
    let stub = Stub::start(vec![Reply::Reset, Reply::json(201, V2)]).await;
    let err = create_limit(&client(&stub)).await.unwrap_err();
    assert!(err.is_connection_lost() && !err.is_connect(), "{err:?}");
    assert_eq!(stub.requests().len(), 1, "not sent twice");
}

#[tokio::test]
async fn a_502_is_retried_for_reads_only() {
    let page = "<html><body><h1>502 Bad Gateway</h1></body></html>";
    let stub = Stub::start(vec![
        Reply::with_type(502, "text/html", page),
        Reply::json(200, LIMIT),
    ])
    .await;
    read_limit(&stub).await.unwrap();
    assert_eq!(stub.requests().len(), 2);

    let stub = Stub::start(vec![
        Reply::with_type(502, "text/html", page),
        Reply::json(201, V2),
    ])
    .await;
    let err = create_limit(&client(&stub)).await.unwrap_err();
    assert_eq!(stub.requests().len(), 1);
    let Error::Server(api) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(api.status.as_u16(), 502);
    assert!(
        api.detail.contains("502 Bad Gateway"),
        "the page is kept short: {}",
        api.detail
    );
}

#[tokio::test]
async fn an_html_page_with_200_is_a_decode_error_naming_the_url() {
    let stub = Stub::start(vec![Reply::with_type(
        200,
        "text/html",
        "<!doctype html><title>Prefect</title>",
    )])
    .await;
    let err = read_limit(&stub).await.unwrap_err();
    let Error::Decode {
        operation, excerpt, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(operation, "read_concurrency_limit_by_tag");
    assert!(excerpt.starts_with("<!doctype"));
    assert!(err.to_string().contains("PREFECT_API_URL"), "{err}");
}

#[tokio::test]
async fn truncated_and_mistyped_json_are_decode_errors() {
    for body in [&LIMIT[..40], r#"{"id": 5}"#, "", "null"] {
        let stub = Stub::start(vec![Reply::json(200, body)]).await;
        let err = read_limit(&stub).await.unwrap_err();
        assert!(matches!(err, Error::Decode { .. }), "{body:?}: {err:?}");
    }
}

#[tokio::test]
async fn a_wrong_key_is_unauthorized_and_never_shown() {
    let stub = Stub::start(vec![Reply::json(401, r#"{"detail":"Invalid API key"}"#)]).await;
    let err = read_limit(&stub).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized(_)) && err.is_auth());
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("PREFECT_API_KEY"), "{shown}");
    assert!(!shown.contains(KEY), "the key leaked: {shown}");
    assert_eq!(stub.requests().len(), 1, "401 is not retried");

    let stub = Stub::start(vec![Reply::json(403, r#"{"detail":"Forbidden"}"#)]).await;
    let err = read_limit(&stub).await.unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
}

#[tokio::test]
async fn slots_taken_carry_prefects_decimal_retry_after() {
    let stub = Stub::start(vec![
        Reply::json(423, r#"{"detail":"Locked"}"#).header("retry-after", "2.5883079211315216"),
    ])
    .await;
    let err = client(&stub)
        .global_concurrency_limits()
        .increment_with_lease(["n"], 1)
        .lease_duration(Duration::from_secs(60))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_slots_unavailable(), "{err:?}");
    assert_eq!(
        err.retry_after(),
        Some(Duration::from_secs_f64(2.5883079211315216))
    );
    assert_eq!(stub.requests().len(), 1, "423 is left to the slot guard");
}

#[tokio::test]
async fn a_server_error_keeps_prefects_message() {
    let stub = Stub::start(vec![Reply::json(
        500,
        r#"{"exception_message":"Internal Server Error"}"#,
    )])
    .await;
    let err = read_limit(&stub).await.unwrap_err();
    let Error::Server(api) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(api.detail, "Internal Server Error");
    assert_eq!(stub.requests().len(), 1, "500 is not retried");
    assert!(!format!("{err:?}").contains(KEY));
}

#[tokio::test]
async fn an_unreachable_port_fails_fast_with_the_fix() {
    let client = unreachable_server().api_key(KEY).build().unwrap();
    let started = Instant::now();
    let err = client.health().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let shown = format!("{err} {err:?}");
    assert!(
        shown.contains("PREFECT_API_URL") && !shown.contains(KEY),
        "{shown}"
    );
}

#[tokio::test]
async fn an_acquisition_from_an_unreachable_server_fails_after_the_transports_retries() {
    let client = unreachable_server().build().unwrap();
    let started = Instant::now();
    let err = client.concurrency(["n"]).acquire().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    assert!(err.to_string().contains("PREFECT_API_URL"), "{err}");
    // The transport's one retry, not five more rounds of it (about 5 s of waits), nor repeated
    // CSRF token requests before it.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn slot_guards_through_a_flaky_server_still_acquire() {
    // A 503 and a reset before the server grants the lease: the guard retries and gets it.
    let lease = r#"{"lease_id":"0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9","limits":[{"id":"5f5c3a8e-8a1e-4c1c-9a4e-0d3c1a2b3c4d","name":"n","limit":1}]}"#;
    let stub = Stub::start(vec![
        unavailable(),
        Reply::Reset,
        Reply::json(200, lease),
        Reply::json(204, ""),
    ])
    .await;
    let client = client(&stub);
    let guard = client
        .concurrency(["n"])
        .timeout(Duration::from_secs(10))
        .acquire()
        .await
        .unwrap();
    assert_eq!(guard.limits()[0].name, "n");
    guard.release().await.unwrap();
    let paths: Vec<String> = stub.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths.last().unwrap(),
        "/api/v2/concurrency_limits/decrement-with-lease"
    );
}

/// A listener whose accept queue is full (backlog 0, one connection waiting): the kernel drops
/// further SYNs, so a connection attempt hangs until the connect timeout, as to a host behind a
/// firewall that drops packets.
async fn unconnectable() -> (u16, tokio::net::TcpListener, std::net::TcpStream) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let port = listener.local_addr().unwrap().port();
    let queued = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    (port, listener, queued)
}

#[tokio::test]
async fn a_connect_timeout_is_a_connect_error_retried_for_every_operation() {
    let (port, _listener, _queued) = unconnectable().await;
    let client = Client::builder(&format!("http://127.0.0.1:{port}/api"))
        .connect_timeout(Duration::from_millis(300))
        .request_timeout(Duration::from_secs(60))
        .max_retries(2)
        .build()
        .unwrap();
    for create in [false, true] {
        let before = client.requests_sent();
        let started = Instant::now();
        let err = if create {
            // Not repeatable once sent, but nothing was sent: retried all the same.
            client
                .global_concurrency_limits()
                .create("n", 1)
                .await
                .unwrap_err()
        } else {
            client.health().await.unwrap_err()
        };
        assert!(err.is_connect() && !err.is_timeout(), "{err:?}");
        assert_eq!(client.requests_sent() - before, 3, "tried, then retried twice");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        let message = err.to_string();
        assert!(
            message.contains("connect timeout") && !message.contains("PREFECT_API_REQUEST_TIMEOUT"),
            "{message}"
        );
    }
}
