//! Live events over the `/events/out` websocket against real Prefect servers: events from this
//! SDK, from Prefect's Python client and from the server itself arrive in order, each once,
//! across dropped connections, stalls and a server restart; bad credentials and bad filters are
//! typed errors; waits for a flow run wake on its events.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt;
use prefect_client::streaming::Subscription;
use prefect_client::types::{
    Event, EventFilter, EventFilterAnyResource, EventResourceFilter, ReadEventsBody, ReceivedEvent, StateType,
};
use prefect_client::{Client, Error};
use prefect_testkit::{LocalServer, free_port};
use serde_json::json;
use uuid::Uuid;

use common::serving::python;
use common::tcp_proxy::TcpProxy;
use common::{client, collect_all, is_client_side, poll_until, unique, unique_resource, wait_until};

/// Events about the resource `rust.test.<marker>`.
fn about(resource: &str) -> EventFilter {
    EventFilter {
        resource: Some(EventResourceFilter {
            id: Some(vec![resource.to_string()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn event(resource: &str, n: usize) -> Event {
    serde_json::from_value(json!({
        "id": Uuid::new_v4(),
        "occurred": chrono::Utc::now(),
        "event": "rust.test.tick",
        "resource": { "prefect.resource.id": resource },
        "payload": { "n": n },
    }))
    .unwrap()
}

/// Emits events `range` about `resource` over REST, one request each.
async fn emit(client: &Client, resource: &str, range: std::ops::Range<usize>) {
    for n in range {
        client.events().emit_all(&[event(resource, n)]).await.unwrap();
    }
}

/// The next `count` events' `n` payloads, or a panic naming what came after `within`.
async fn take(events: &mut Subscription<ReceivedEvent>, count: usize, within: Duration) -> Vec<u64> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while seen.len() < count {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(Ok(event))) => seen.push(event.payload["n"].as_u64().unwrap()),
            Ok(Some(Err(e))) => panic!("the subscription failed after {seen:?}: {e}"),
            Ok(None) => panic!("the subscription ended after {seen:?}"),
            Err(_) => panic!(
                "only {} of {count} events within {within:?}: {seen:?}",
                seen.len()
            ),
        }
    }
    seen
}

/// Nothing more arrives for a moment (no repeats).
async fn assert_quiet(events: &mut Subscription<ReceivedEvent>) {
    if let Ok(Some(extra)) = tokio::time::timeout(Duration::from_millis(1500), events.next()).await {
        panic!("an extra event arrived: {:?}", extra.map(|e| e.payload));
    }
}

#[tokio::test]
async fn events_from_this_sdk_arrive_in_order_each_once() {
    let client = client().await;
    let resource = unique_resource("order");
    let mut events = client.events().subscribe(about(&resource)).await.unwrap();
    emit(&client, &resource, 0..30).await;
    let seen = take(&mut events, 30, Duration::from_secs(20)).await;
    assert_eq!(seen, (0..30).collect::<Vec<u64>>());
    assert_quiet(&mut events).await;
}

#[tokio::test]
async fn events_emitted_by_prefects_python_client_arrive() {
    let client = client().await;
    let resource = unique_resource("python");
    let mut events = client.events().subscribe(about(&resource)).await.unwrap();
    let script = "import sys\n\
        from prefect.events import emit_event\n\
        for n in range(10):\n    \
            emit_event(event='python.tick', resource={'prefect.resource.id': sys.argv[1]}, payload={'n': n})\n";
    python(client.api_url(), script, &[&resource]).await;
    let seen = take(&mut events, 10, Duration::from_secs(20)).await;
    assert_eq!(seen, (0..10).collect::<Vec<u64>>());
    assert_quiet(&mut events).await;
}

#[tokio::test]
async fn the_servers_own_flow_run_events_arrive_and_wake_a_wait() {
    let client = client().await;
    let flow = client.flows().create(&unique("events-flow")).await.unwrap();
    let run = create_run(&client, flow.id).await;
    let filter = EventFilter {
        any_resource: Some(EventFilterAnyResource::EventAnyResourceFilter(
            serde_json::from_value(json!({ "id": [format!("prefect.flow-run.{run}")] })).unwrap(),
        )),
        ..Default::default()
    };
    let mut events = client.events().subscribe(filter).await.unwrap();
    let waiter = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .flow_runs()
                .wait_for_completion(run, Duration::from_secs(60))
                .await
        })
    };
    for state in [StateType::Running, StateType::Completed] {
        tokio::time::sleep(Duration::from_millis(300)).await;
        client.flow_runs().set_state(run, state).send().await.unwrap();
    }
    let mut names = Vec::new();
    while names.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("the server's flow-run events arrive")
            .unwrap()
            .unwrap();
        // The run's creation (Pending) happened just before the subscription: its event comes
        // or not, depending on whether the server stored it before the backfill read.
        if event.event.starts_with("prefect.flow-run.") && event.event != "prefect.flow-run.Pending" {
            names.push(event.event);
        }
    }
    assert_eq!(names, ["prefect.flow-run.Running", "prefect.flow-run.Completed"]);
    let finished = waiter.await.unwrap().unwrap();
    assert_eq!(finished.state_type, Some(StateType::Completed));
}

#[tokio::test]
async fn a_wait_for_a_state_returns_when_the_run_reaches_it() {
    let client = client().await;
    let flow = client.flows().create(&unique("wait-state")).await.unwrap();
    let run = create_run(&client, flow.id).await;
    let waiter = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .flow_runs()
                .wait_for_state(run, &[StateType::Running], Duration::from_secs(60))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiter.is_finished(), "the run is still pending");
    client
        .flow_runs()
        .set_state(run, StateType::Running)
        .send()
        .await
        .unwrap();
    let running = tokio::time::timeout(Duration::from_secs(15), waiter)
        .await
        .expect("the wait returns soon after the change")
        .unwrap()
        .unwrap();
    assert_eq!(running.state_type, Some(StateType::Running));
    // A wait that times out says where the run is.
    let error = client
        .flow_runs()
        .wait_for_completion(run, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::WaitTimeout { ref state, .. } if state.as_deref() == Some("RUNNING")),
        "{error}"
    );
}

#[tokio::test]
async fn dropped_connections_are_resumed_without_loss_or_repeats() {
    let client = client().await;
    let proxy = TcpProxy::start(client.api_url()).await;
    let through = Client::new(&proxy.api_url).unwrap();
    let resource = unique_resource("cut");
    let mut events = through.events().subscribe(about(&resource)).await.unwrap();
    emit(&client, &resource, 0..10).await;
    let mut seen = take(&mut events, 10, Duration::from_secs(20)).await;
    for round in 0..3 {
        proxy.cut_all();
        // Emitted while the subscription is down or reconnecting.
        let from = 10 + round * 10;
        emit(&client, &resource, from..from + 10).await;
        seen.extend(take(&mut events, 10, Duration::from_secs(30)).await);
    }
    assert_eq!(seen, (0..40).collect::<Vec<u64>>());
    assert_quiet(&mut events).await;
    assert!(
        proxy.accepted() >= 4,
        "it reconnected: {} connections",
        proxy.accepted()
    );
}

#[tokio::test]
async fn a_stalled_connection_is_detected_and_replaced() {
    let client = client().await;
    let proxy = TcpProxy::start(client.api_url()).await;
    let through = Client::builder(&proxy.api_url)
        .request_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let resource = unique_resource("stall");
    let mut events = through
        .events()
        .subscribe(about(&resource))
        .keepalive(Duration::from_millis(300))
        .await
        .unwrap();
    emit(&client, &resource, 0..5).await;
    let mut seen = take(&mut events, 5, Duration::from_secs(20)).await;
    proxy.stall(true);
    emit(&client, &resource, 5..10).await;
    let reader = tokio::spawn(async move {
        let more = take(&mut events, 5, Duration::from_secs(30)).await;
        (events, more)
    });
    // The stalled connection is given up and a new one is opened.
    let reconnected = || proxy.accepted() >= 2;
    wait_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        "no reconnection after a stall",
        reconnected,
    )
    .await;
    proxy.stall(false);
    let (mut events, more) = reader.await.unwrap();
    seen.extend(more);
    assert_eq!(seen, (0..10).collect::<Vec<u64>>());
    assert_quiet(&mut events).await;
}

#[tokio::test]
async fn a_server_that_stays_away_ends_the_stream_with_a_typed_error_in_bounded_time() {
    let client = client().await;
    let proxy = TcpProxy::start(client.api_url()).await;
    let through = Client::new(&proxy.api_url).unwrap();
    let mut events = through
        .events()
        .subscribe(about("rust.test.away"))
        .max_reconnects(3)
        .await
        .unwrap();
    proxy.refuse(true);
    proxy.cut_all();
    let started = std::time::Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .expect("the stream ends in bounded time");
    let error = end.expect("an error, not a silent end").unwrap_err();
    assert!(matches!(error, Error::SocketLost { attempts: 3, .. }), "{error}");
    assert!(error.to_string().contains("could not be reopened"), "{error}");
    assert!(events.next().await.is_none(), "the stream ends after its error");
    eprintln!("gave up after {:?}", started.elapsed());
}

#[tokio::test]
async fn a_bad_filter_is_a_typed_error() {
    let client = client().await;
    let filter = EventFilter {
        any_resource: Some(EventFilterAnyResource::Unknown(json!({ "no_such_key": 1 }))),
        ..Default::default()
    };
    let mut events = client.events().subscribe(filter).await.unwrap();
    let error = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("the refusal comes at once")
        .unwrap()
        .unwrap_err();
    assert!(matches!(error, Error::SocketRejected { .. }), "{error}");
    assert!(error.to_string().contains("filter"), "{error}");
}

#[tokio::test]
async fn the_emitter_sends_many_events_each_once_across_a_dropped_connection() {
    let client = client().await;
    let proxy = TcpProxy::start(client.api_url()).await;
    let through = Client::new(&proxy.api_url).unwrap();
    let resource = unique_resource("emitter");
    let emitter = through.events().emitter().await.unwrap();
    for n in 0..2_000 {
        emitter.emit(event(&resource, n)).await.unwrap();
        // Cut mid-stream (events queued and unconfirmed), then right after a checkpoint.
        if n == 700 {
            proxy.cut_all();
        }
        if n == 1_400 {
            emitter.flush().await.unwrap();
            proxy.cut_all();
        }
    }
    let report = emitter.close().await.unwrap();
    assert_eq!(report.sent, 2_000);
    assert!(report.reconnects >= 2, "{report:?}");
    // The server stores events in batches: read until all are there (or a minute passed).
    let body = ReadEventsBody {
        filter: Some(about(&resource)),
        limit: 50,
    };
    let read = || collect_all(client.events().stream(body.clone()));
    let stored = poll_until(Duration::from_secs(60), Duration::from_secs(1), read, |s| {
        s.len() >= 2_000
    })
    .await;
    let numbers: HashSet<u64> = stored.iter().map(|e| e.payload["n"].as_u64().unwrap()).collect();
    assert_eq!(numbers.len(), 2_000, "every event arrived");
    assert_eq!(stored.len(), 2_000, "none twice");
}

#[tokio::test]
async fn a_subscription_survives_a_server_restart() {
    let home = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let mut server = LocalServer::builder()
        .port(port)
        .start_with_home(home.path())
        .await
        .unwrap();
    let client = server.client().unwrap();
    let resource = unique_resource("restart");
    let mut events = client
        .events()
        .subscribe(about(&resource))
        .max_reconnects(20)
        .await
        .unwrap();
    emit(&client, &resource, 0..10).await;
    let mut seen = take(&mut events, 10, Duration::from_secs(20)).await;
    server.stop();
    let mut server = LocalServer::builder()
        .port(port)
        .start_with_home(home.path())
        .await
        .unwrap();
    emit(&client, &resource, 10..20).await;
    seen.extend(take(&mut events, 10, Duration::from_secs(90)).await);
    assert_eq!(seen, (0..20).collect::<Vec<u64>>());
    assert_quiet(&mut events).await;
    server.stop();
}

#[tokio::test]
async fn wrong_credentials_are_a_typed_error_without_the_secret() {
    let server = LocalServer::builder()
        .env("PREFECT_SERVER_API_AUTH_STRING", "admin:right-secret")
        .start()
        .await
        .unwrap();
    let wrong = Client::builder(server.api_url())
        .auth_string("admin:wrong-secret-123")
        .build()
        .unwrap();
    let error = wrong
        .events()
        .subscribe(EventFilter::default())
        .await
        .unwrap_err();
    assert!(error.is_auth(), "{error:?}");
    let shown = format!("{error} {error:?}");
    assert!(shown.contains("PREFECT_API_AUTH_STRING"), "{shown}");
    assert!(!shown.contains("wrong-secret-123"), "{shown}");
    let error = wrong.events().emitter().await.unwrap_err();
    assert!(error.is_auth(), "{error:?}");
    // The right credentials subscribe.
    let right = Client::builder(server.api_url())
        .auth_string("admin:right-secret")
        .build()
        .unwrap();
    let resource = unique_resource("auth");
    let mut events = right.events().subscribe(about(&resource)).await.unwrap();
    emit(&right, &resource, 0..3).await;
    assert_eq!(take(&mut events, 3, Duration::from_secs(20)).await, [0, 1, 2]);
    let _ = server;
}

/// Creates a pending flow run of `flow`.
async fn create_run(client: &Client, flow: Uuid) -> Uuid {
    let body: prefect_client::types::FlowRunCreate =
        serde_json::from_value(json!({ "flow_id": flow, "state": { "type": "PENDING" } })).unwrap();
    client.raw().create_flow_run(&body).await.unwrap().into_inner().id
}

#[tokio::test]
async fn an_event_prefect_would_refuse_is_refused_before_sending_and_the_rest_all_arrive() {
    // Prefect's /events/in handler dies on an invalid event while the socket still answers
    // pings: before, close() reported 11 sent and the server stored 5.
    let client = client().await;
    let resource = unique_resource("invalid");
    let emitter = client.events().emitter().await.unwrap();
    for n in 0..5 {
        emitter.emit(event(&resource, n)).await.unwrap();
    }
    let mut invalid = event(&resource, 99);
    invalid.resource.0.clear();
    let refused = emitter.emit(invalid.clone()).await.unwrap_err();
    assert!(
        refused.is_client_side() && refused.to_string().contains("prefect.resource.id"),
        "{refused}"
    );
    for n in 5..10 {
        emitter.emit(event(&resource, n)).await.unwrap();
    }
    let report = emitter.close().await.unwrap();
    assert_eq!(report.sent, 10);
    // The same refusal over REST, before anything is sent.
    let before = client.requests_sent();
    assert!(is_client_side(client.events().emit_all(&[invalid]).await));
    assert_eq!(client.requests_sent(), before);
    let stored = stored_count(&client, &resource, 10).await;
    assert_eq!(stored, 10, "every valid event is stored");
}

/// How many events about `resource` the server stored, read until `expected` are there or a
/// minute passed.
async fn stored_count(client: &Client, resource: &str, expected: usize) -> usize {
    let read = || {
        let body = ReadEventsBody {
            filter: Some(EventFilter {
                occurred: Some(prefect_client::types::EventOccurredFilter {
                    since: Some(chrono::Utc::now() - chrono::Duration::minutes(10)),
                    until: None,
                }),
                ..about(resource)
            }),
            limit: 50,
        };
        collect_all(client.events().stream(body))
    };
    let stored = poll_until(Duration::from_secs(60), Duration::from_millis(500), read, |s| {
        s.len() >= expected
    })
    .await;
    stored.len()
}

#[tokio::test]
async fn a_subscription_that_has_seen_nothing_yet_catches_up_on_what_came_while_it_was_down() {
    let client = client().await;
    let proxy = TcpProxy::start(client.api_url()).await;
    let through = Client::new(&proxy.api_url).unwrap();
    let resource = unique_resource("fresh");
    let mut events = through.events().subscribe(about(&resource)).await.unwrap();
    // Every connection down for 2 s, before anything was delivered; an event meanwhile.
    proxy.refuse(true);
    proxy.cut_all();
    emit(&client, &resource, 0..1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.refuse(false);
    let seen = take(&mut events, 1, Duration::from_secs(45)).await;
    assert_eq!(seen, [0]);
    emit(&client, &resource, 1..3).await;
    assert_eq!(take(&mut events, 2, Duration::from_secs(20)).await, [1, 2]);
    assert_quiet(&mut events).await;
}
