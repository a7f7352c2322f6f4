//! Live events benchmark against a real Prefect server started here (not run in CI; `cargo bench
//! --no-run` keeps it compiling).
//!
//!     cargo bench --bench live_events                  # all rows, Prefect's Python client included
//!     cargo bench --bench live_events -- --no-python   # SDK rows only
//!
//! - Wait latency: a pending flow run is set COMPLETED 1.5–2 s after a waiter started; the time
//!   from the server's answer to that change until the waiter returns, median and max of 15
//!   runs, for `wait_for_completion` (event-driven), the polling it replaced (0.5 s growing
//!   ×1.5 to 10 s), and Prefect's Python `wait_for_flow_run`.
//! - Emit throughput: 2,000 events over the `/events/in` socket (EventEmitter, until every one
//!   is confirmed), over REST one request each, and over REST 100 per request.
//! - Delivery: events per second a subscriber receives while 5,000 are emitted at full speed,
//!   and how many of them it received (Prefect drops events for a subscriber whose
//!   server-side queue of 256 is full).

use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use prefect_client::types::{Event, EventFilter, EventResourceFilter, FlowRunCreate, StateType};
use prefect_client::{Client, resources::flow_runs::is_final};
use prefect_testkit::LocalServer;
use serde_json::json;
use uuid::Uuid;

const WAITS: usize = 15;

#[tokio::main]
async fn main() {
    let with_python = !std::env::args().any(|a| a == "--no-python");
    let server = LocalServer::start().await.expect("local Prefect server");
    let client = server.client().unwrap();
    let flow = client.flows().create("live-events-bench").await.unwrap();

    println!("## Wait for a run's end: latency after the change (median / max of {WAITS})");
    let rows: [(&str, Waiter); 2] = [
        ("wait_for_completion (events)", Waiter::Events),
        ("polling (before)", Waiter::Polling),
    ];
    for (label, waiter) in rows {
        let mut latencies = Vec::new();
        for _ in 0..WAITS {
            latencies.push(wait_latency(&client, flow.id, waiter).await);
        }
        report(label, latencies);
    }
    if with_python {
        let mut latencies = Vec::new();
        for _ in 0..WAITS {
            latencies.push(python_wait_latency(&client, flow.id).await);
        }
        report("Python wait_for_flow_run", latencies);
    }

    println!("\n## Emit 2,000 events");
    let events = |resource: &str| (0..2_000).map(|n| event(resource, n)).collect::<Vec<_>>();
    let batch = events("bench.emit.socket");
    let started = Instant::now();
    let emitter = client.events().emitter().await.unwrap();
    for event in batch {
        emitter.emit(event).await.unwrap();
    }
    let sent = emitter.close().await.unwrap().sent;
    print_rate(
        "socket (EventEmitter, confirmed)",
        sent as usize,
        started.elapsed(),
    );
    let batch = events("bench.emit.rest");
    let started = Instant::now();
    for event in &batch {
        client
            .events()
            .emit_all(std::slice::from_ref(event))
            .await
            .unwrap();
    }
    print_rate("REST, one request each", batch.len(), started.elapsed());
    let batch = events("bench.emit.rest100");
    let started = Instant::now();
    for chunk in batch.chunks(100) {
        client.events().emit_all(chunk).await.unwrap();
    }
    print_rate("REST, 100 per request", batch.len(), started.elapsed());

    println!("\n## Delivery to a subscriber of 5,000 events emitted over the socket");
    for per_second in [None, Some(2_000), Some(500)] {
        delivery(&client, per_second).await;
    }
}

/// Emits 5,000 events (at full speed, or paced in tens), counting what a subscriber receives.
async fn delivery(client: &Client, per_second: Option<u64>) {
    let resource = format!("bench.delivery.{}", Uuid::new_v4().simple());
    let filter = EventFilter {
        resource: Some(EventResourceFilter {
            id: Some(vec![resource.clone()]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut subscription = client.events().subscribe(filter).await.unwrap();
    let receiver = tokio::spawn(async move {
        let mut received = 0usize;
        let mut first = None;
        let mut last = Instant::now();
        while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_secs(5), subscription.next()).await {
            first.get_or_insert_with(Instant::now);
            last = Instant::now();
            received += 1;
        }
        (received, first.map(|f| last - f))
    });
    let emitter = client.events().emitter().await.unwrap();
    let mut ticks = per_second.map(|rate| tokio::time::interval(Duration::from_micros(10_000_000 / rate)));
    for n in 0..5_000 {
        if n % 10 == 0
            && let Some(ticks) = ticks.as_mut()
        {
            ticks.tick().await;
        }
        emitter.emit(event(&resource, n)).await.unwrap();
    }
    emitter.close().await.unwrap();
    let (received, span) = receiver.await.unwrap();
    let span = span.unwrap_or_default();
    let pace = per_second.map_or("full speed".to_string(), |r| format!("{r}/s"));
    println!(
        "| emitted at {pace} | received {received} of 5000 | {:.0} events/s while arriving ({:.2} s) |",
        received as f64 / span.as_secs_f64().max(1e-9),
        span.as_secs_f64()
    );
}

#[derive(Clone, Copy)]
enum Waiter {
    Events,
    Polling,
}

fn event(resource: &str, n: usize) -> Event {
    serde_json::from_value(json!({
        "id": Uuid::new_v4(),
        "occurred": chrono::Utc::now(),
        "event": "bench.tick",
        "resource": { "prefect.resource.id": resource },
        "payload": { "n": n },
    }))
    .unwrap()
}

async fn pending_run(client: &Client, flow: Uuid) -> Uuid {
    let body: FlowRunCreate =
        serde_json::from_value(json!({ "flow_id": flow, "state": { "type": "PENDING" } })).unwrap();
    client.raw().create_flow_run(&body).await.unwrap().into_inner().id
}

/// Sets the run COMPLETED after 1.5–2 s; returns when the server answered.
async fn complete_later(client: &Client, run: Uuid) -> Instant {
    tokio::time::sleep(Duration::from_millis(1_500 + fastrand::u64(0..500))).await;
    client
        .flow_runs()
        .set_state(run, StateType::Running)
        .send()
        .await
        .unwrap();
    client
        .flow_runs()
        .set_state(run, StateType::Completed)
        .send()
        .await
        .unwrap();
    Instant::now()
}

async fn wait_latency(client: &Client, flow: Uuid, waiter: Waiter) -> Duration {
    let run = pending_run(client, flow).await;
    let wait = async {
        match waiter {
            Waiter::Events => {
                client
                    .flow_runs()
                    .wait_for_completion(run, Duration::from_secs(60))
                    .await
                    .unwrap();
            }
            Waiter::Polling => poll_until_final(client, run).await,
        }
        Instant::now()
    };
    let (done, changed) = tokio::join!(wait, complete_later(client, run));
    done.saturating_duration_since(changed)
}

/// The wait before events: polls from 0.5 s, ×1.5 each time, at most 10 s apart.
async fn poll_until_final(client: &Client, run: Uuid) {
    let mut pause = Duration::from_millis(500);
    loop {
        let state = client.flow_runs().get(run).await.unwrap().state_type;
        if state.as_ref().is_some_and(is_final) {
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause.mul_f64(1.5)).min(Duration::from_secs(10));
    }
}

async fn python_wait_latency(client: &Client, flow: Uuid) -> Duration {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let run = pending_run(client, flow).await;
    let venv = tokio::task::spawn_blocking(prefect_testkit::ensure_venv)
        .await
        .unwrap()
        .unwrap();
    let home = tempfile_dir();
    let script = "import asyncio, sys, time\n\
        from prefect.flow_runs import wait_for_flow_run\n\
        from prefect.client.orchestration import get_client\n\
        async def main():\n    \
            async with get_client() as client:\n        \
                await client.read_flow_run(sys.argv[1])\n        \
                print('ready', flush=True)\n        \
                await wait_for_flow_run(sys.argv[1], client=client)\n        \
                print(time.time(), flush=True)\n\
        asyncio.run(main())\n";
    let mut child = tokio::process::Command::new(venv.join("bin/python"))
        .args(["-c", script, &run.to_string()])
        .env("PREFECT_API_URL", client.api_url())
        .env("PREFECT_HOME", &home)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("ready"));
    complete_later(client, run).await;
    let changed = SystemTime::now();
    let done: f64 = lines.next_line().await.unwrap().unwrap().parse().unwrap();
    child.wait().await.unwrap();
    let _ = std::fs::remove_dir_all(&home);
    let changed = changed
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    Duration::from_secs_f64((done - changed).max(0.0))
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("live-events-bench-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn report(label: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    let max = latencies[latencies.len() - 1];
    println!(
        "| {label} | median {:.0} ms | max {:.0} ms |",
        median.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
}

fn print_rate(label: &str, count: usize, took: Duration) {
    println!(
        "| {label} | {count} in {:.2} s | {:.0} events/s |",
        took.as_secs_f64(),
        count as f64 / took.as_secs_f64()
    );
}
