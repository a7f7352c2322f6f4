//! Faults injected by a loopback proxy between the client and the real Prefect server: 503
//! bursts, 429 with Retry-After, connections reset before and after the server acted, answers
//! stalled past the timeout. After each: the work completes within the retry budget (or, where
//! repeating could duplicate, ends in a typed error), nothing is created twice (the objects are
//! counted on the server), and no slot is left held.

mod common;

use std::time::{Duration, Instant};

use common::proxy::{Fault, FaultProxy};
use common::{client as direct_client, new_global_limit, server, unique};
use futures_util::TryStreamExt;
use prefect_client::types::{self, FlowRunResponse};
use prefect_client::{Client, Error};
use serde_json::json;
use uuid::Uuid;

/// The request that takes slots with a lease.
const TAKE_LEASE: &str = "/v2/concurrency_limits/increment-with-lease";
/// The request that releases a lease's slots.
const RELEASE_LEASE: &str = "/v2/concurrency_limits/decrement-with-lease";

async fn proxy() -> FaultProxy {
    FaultProxy::start(server().await.api_url()).await
}

fn through(proxy: &FaultProxy, timeout: Duration) -> Client {
    Client::builder(&proxy.api_url)
        .request_timeout(timeout)
        .build()
        .unwrap()
}

/// Creates a tag limit of `limit` slots directly on the server, with a tag named after `prefix`;
/// its tag.
async fn new_tag_limit(prefix: &str, limit: i64) -> String {
    let tag = unique(prefix);
    direct_client()
        .await
        .concurrency_limits()
        .create(&tag, limit)
        .await
        .unwrap();
    tag
}

/// A flow of its own, made directly on the server.
async fn new_flow() -> Uuid {
    let name = unique("flow");
    let body: types::FlowCreate = serde_json::from_value(json!({ "name": name })).unwrap();
    direct_client()
        .await
        .raw()
        .create_flow(&body)
        .await
        .unwrap()
        .into_inner()
        .id
}

async fn create_flow_run(client: &Client, flow_id: Uuid) -> Result<FlowRunResponse, Error> {
    let body: types::FlowRunCreate = serde_json::from_value(json!({ "flow_id": flow_id })).unwrap();
    match client.raw().create_flow_run(&body).await {
        Ok(run) => Ok(run.into_inner()),
        Err(e) => Err(Error::from_generated(e).await),
    }
}

/// Flow runs of `flow_id` as the server counts them (asked directly, not through the proxy).
async fn count_flow_runs(flow_id: Uuid) -> i64 {
    let body: types::CountFlowRunsBody =
        serde_json::from_value(json!({ "flows": { "id": { "any_": [flow_id] } } })).unwrap();
    direct_client()
        .await
        .raw()
        .count_flow_runs(&body)
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn a_burst_of_503s_on_a_create_is_ridden_out_and_creates_once() {
    let proxy = proxy().await;
    let client = through(&proxy, Duration::from_secs(20));
    let flow = new_flow().await;
    proxy.inject("POST", "/flow_runs/", Fault::Status(503, None), 3);
    create_flow_run(&client, flow).await.unwrap();
    assert_eq!(proxy.faults_applied(), 3);
    assert_eq!(count_flow_runs(flow).await, 1);
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_and_creates_once() {
    let proxy = proxy().await;
    let client = through(&proxy, Duration::from_secs(20));
    let flow = new_flow().await;
    proxy.inject("POST", "/flow_runs/", Fault::Status(429, Some("1")), 1);
    let started = Instant::now();
    create_flow_run(&client, flow).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited the Retry-After"
    );
    assert_eq!(count_flow_runs(flow).await, 1);
}

#[tokio::test]
async fn a_reset_before_the_server_saw_a_read_is_retried() {
    let proxy = proxy().await;
    let client = through(&proxy, Duration::from_secs(20));
    let tag = new_tag_limit("reset-read", 2).await;
    proxy.inject("GET", "/concurrency_limits/tag/", Fault::ResetBefore, 2);
    let limit = client.concurrency_limits().get_by_tag(&tag).await.unwrap();
    assert_eq!(limit.concurrency_limit, 2);
    assert_eq!(proxy.faults_applied(), 2);
}

#[tokio::test]
async fn a_create_whose_answer_is_lost_is_not_repeated() {
    let proxy = proxy().await;
    let client = through(&proxy, Duration::from_secs(20));
    let flow = new_flow().await;
    proxy.inject("POST", "/flow_runs/", Fault::ResetAfter, 1);
    let err = create_flow_run(&client, flow).await.unwrap_err();
    assert!(matches!(err, Error::ConnectionLost { .. }), "{err:?}");
    assert!(err.to_string().contains("may have acted"), "{err}");
    assert_eq!(
        count_flow_runs(flow).await,
        1,
        "the server acted once; the client did not repeat it: {:?}",
        proxy.log()
    );
}

#[tokio::test]
async fn an_upsert_whose_answer_is_lost_is_repeated_safely() {
    let proxy = proxy().await;
    let client = through(&proxy, Duration::from_secs(20));
    let tag = unique("reset-upsert");
    proxy.inject("POST", "/concurrency_limits/", Fault::ResetAfter, 1);
    let limit = client.concurrency_limits().create(&tag, 4).await.unwrap();
    assert_eq!(limit.concurrency_limit, 4);
    assert_eq!(
        proxy.acted_on("POST", "/concurrency_limits/"),
        2,
        "acted on twice, upserted into one: {:?}",
        proxy.log()
    );
    let all = direct_client()
        .await
        .concurrency_limits()
        .stream(Default::default())
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    assert_eq!(all.iter().filter(|l| l.tag == tag).count(), 1);
}

#[tokio::test]
async fn a_read_stalled_past_the_timeout_is_retried_once_then_fails_in_bounded_time() {
    let proxy = proxy().await;
    let client = through(&proxy, Duration::from_secs(1));
    let tag = new_tag_limit("stall", 1).await;

    proxy.inject(
        "GET",
        "/concurrency_limits/tag/",
        Fault::StallAfter(Duration::from_secs(5)),
        1,
    );
    let started = Instant::now();
    client.concurrency_limits().get_by_tag(&tag).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    proxy.inject(
        "GET",
        "/concurrency_limits/tag/",
        Fault::StallAfter(Duration::from_secs(5)),
        2,
    );
    let started = Instant::now();
    let err = client.concurrency_limits().get_by_tag(&tag).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("PREFECT_API_REQUEST_TIMEOUT"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "two timeouts, then the error"
    );
}

#[tokio::test]
async fn a_create_stalled_past_the_timeout_is_not_repeated() {
    let proxy = proxy().await;
    let client = through(&proxy, Duration::from_secs(1));
    let flow = new_flow().await;
    proxy.inject(
        "POST",
        "/flow_runs/",
        Fault::StallAfter(Duration::from_secs(3)),
        1,
    );
    let err = create_flow_run(&client, flow).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_eq!(proxy.acted_on("POST", "/flow_runs/"), 1, "{:?}", proxy.log());
    assert_eq!(count_flow_runs(flow).await, 1, "{:?}", proxy.log());
}

/// A limit's active slots, read past the proxy.
async fn active_slots(name: &str) -> i64 {
    common::active_slots(&direct_client().await, name).await
}

#[tokio::test]
async fn slot_guards_ride_out_faults_on_every_lease_call_and_leave_nothing_held() {
    let proxy = proxy().await;
    let client = through(&proxy, Duration::from_secs(20));
    let name = new_global_limit(&direct_client().await, "faulty-slots", 1).await;
    proxy.inject("POST", TAKE_LEASE, Fault::Status(503, None), 2);
    proxy.inject("POST", TAKE_LEASE, Fault::ResetBefore, 1);
    proxy.inject("POST", RELEASE_LEASE, Fault::Status(503, None), 2);
    proxy.inject("POST", RELEASE_LEASE, Fault::ResetAfter, 1);
    for round in 0..3 {
        let held = client
            .concurrency([name.as_str()])
            .timeout(Duration::from_secs(30))
            .hold(async { active_slots(&name).await })
            .await
            .unwrap();
        assert_eq!(held, 1, "round {round}: the slot was held while the work ran");
        assert_eq!(
            active_slots(&name).await,
            0,
            "round {round}: released despite the faults"
        );
    }
    assert_eq!(proxy.pending_faults(), 0, "every fault was met");
}

#[tokio::test]
async fn a_lease_granted_but_unanswered_costs_at_most_the_shortest_lease() {
    let proxy = proxy().await;
    let client = through(&proxy, Duration::from_secs(1));
    let name = new_global_limit(&direct_client().await, "lost-grant", 2).await;
    // The server grants a lease whose answer never arrives in time: the slot is taken, the
    // client cannot know its lease. The acquisition asks again and gets the other slot.
    proxy.inject("POST", TAKE_LEASE, Fault::StallAfter(Duration::from_secs(3)), 1);
    // The holder wants the default 300 s lease; the orphan must cost far less.
    client
        .concurrency([name.as_str()])
        .timeout(Duration::from_secs(30))
        .hold(async {
            assert_eq!(
                active_slots(&name).await,
                2,
                "the unanswered grant holds a slot: {:?}",
                proxy.log()
            );
        })
        .await
        .unwrap();
    let orphaned = Instant::now();
    assert_eq!(active_slots(&name).await, 1, "only the unanswered lease is left");
    // The first term asked is the server's shortest, 60 s; its sweep runs every 15 s.
    let bound = Duration::from_secs(60 + 15 + 5);
    while active_slots(&name).await != 0 {
        assert!(
            orphaned.elapsed() < bound,
            "the unanswered lease held its slot over {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "ORPHANED LEASE HELD ITS SLOT {:.1} s",
        orphaned.elapsed().as_secs_f64()
    );
}
