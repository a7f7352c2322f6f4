//! Served runs at the edges operators hit, against a real server, each beside what Prefect's
//! own runner does in the same case: a cancel while a run waits for its retry, "Retry" from the
//! UI after a persisted task completed, a handler that panics before it gives its future, a
//! shutdown while a run waits for its retry, heartbeats as Prefect's engine sends them, and an
//! old cancellation event replayed to a run retried since.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use prefect_client::resources::deployments::CollisionStrategy;
use prefect_client::runs::{LocalStorage, RunContext};
use prefect_client::serve::{RustFlow, ServeSettings};
use prefect_client::types::{FlowRunPolicyRetryType, StateType};
use prefect_client::{Client, Config};
use uuid::Uuid;

use common::serving::{
    BoxError, completes, create_run_with, failing_once_then_sleeping, history, python, python_cancel, serve,
    serve_and_run, serve_with, shut_down, state_message, task_runs_of, trivial, wait_final, wait_for_run,
};
use common::{client, heartbeats_of_run, poll_until, unique};

/// Retries a run as Prefect's UI and CLI do: SCHEDULED "AwaitingRetry", due now, forced.
async fn retry_as_the_ui_does(api_url: &str, run: Uuid) {
    let script = "import asyncio, sys, uuid\n\
        from prefect.client.orchestration import get_client\n\
        from prefect.states import AwaitingRetry\n\
        async def main():\n    \
            async with get_client() as client:\n        \
                await client.set_flow_run_state(uuid.UUID(sys.argv[1]), AwaitingRetry(), force=True)\n\
        asyncio.run(main())\n";
    python(api_url, script, &[&run.to_string()]).await;
}

/// A flow whose first attempt fails at once and whose one retry is due 120 s later; its attempts.
fn retried_in_two_minutes(name: &str) -> (RustFlow, Arc<AtomicU32>) {
    let (flow, attempts) = failing_once_then_sleeping(name, Duration::ZERO);
    (flow.retries(1, Duration::from_secs(120)), attempts)
}

/// Waits (at most 60 s) until the run waits for its retry (its state named "AwaitingRetry").
async fn awaits_its_retry(client: &Client, run: Uuid) {
    wait_for_run(client, run, Duration::from_secs(60), "AwaitingRetry", |r| {
        r.state_name.as_deref() == Some("AwaitingRetry")
    })
    .await;
}

#[tokio::test]
async fn a_cancel_while_a_run_waits_for_its_retry_ends_it_cancelled_at_once() {
    let client = client().await;
    let name = unique("rust-cancel-in-retry");
    let (flow, attempts) = retried_in_two_minutes(&name);
    let (serving, run) = serve_and_run(&client, &flow, flow.deployment("waits")).await;
    awaits_its_retry(&client, run).await;
    python_cancel(common::server().await.api_url(), run).await;
    // Prefect's runner ends it CANCELLED at once; the server alone would after 300 s.
    let ended = wait_final(&client, &[run], Duration::from_secs(20)).await;
    assert_eq!(
        ended[&run].state_type,
        Some(StateType::Cancelled),
        "{:?}",
        history(&client, run).await
    );
    assert_eq!(attempts.load(Ordering::SeqCst), 1, "the retry never ran");
    shut_down(serving).await;
}

#[tokio::test]
async fn a_shutdown_while_a_run_waits_for_its_retry_schedules_it_for_another_process() {
    let client = client().await;
    let name = unique("rust-shutdown-in-retry");
    let (flow, attempts) = retried_in_two_minutes(&name);
    // A limit of one: the slot the waiting run holds must come back with the shutdown.
    let limited = |flow: &RustFlow| {
        flow.deployment("waits")
            .concurrency_limit(1, CollisionStrategy::Enqueue)
    };
    let settings = ServeSettings::default().grace_period(Duration::from_secs(1));
    let (serving, deployment) = serve_with(&client, &flow, limited(&flow), settings).await;
    let run = client.deployments().create_run(deployment).await.unwrap().id;
    awaits_its_retry(&client, run).await;
    let stopping = tokio::time::Instant::now();
    shut_down(serving).await;
    assert!(
        stopping.elapsed() < Duration::from_secs(20),
        "the shutdown waited {:?}",
        stopping.elapsed()
    );
    let left = client.flow_runs().get(run).await.unwrap();
    assert_eq!(
        left.state_type,
        Some(StateType::Scheduled),
        "scheduled again, not cancelled: {:?}",
        history(&client, run).await
    );
    let retry_type = left.empirical_policy.as_ref().and_then(|p| p.retry_type.clone());
    assert!(
        !matches!(retry_type, Some(FlowRunPolicyRetryType::InProcess)),
        "no other process takes an in-process retry"
    );
    // Another process takes it at once, not in 120 s.
    let next = trivial(&name);
    let polling = ServeSettings::default().poll_interval(Duration::from_secs(1));
    let (serving, _) = serve_with(&client, &next, limited(&next), polling).await;
    completes(&client, run, Duration::from_secs(60)).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
    shut_down(serving).await;
}

/// A flow running a persisted task (counted), a plain task (counted), then failing on its
/// first execution only; the persisted task's storage is a directory of its own.
struct RetriedFlow {
    flow: RustFlow,
    executions: Arc<AtomicU32>,
    persisted_bodies: Arc<AtomicU32>,
    plain_bodies: Arc<AtomicU32>,
    _storage: tempfile::TempDir,
}

/// The [`RetriedFlow`] of a flow named after `prefix`.
fn persisted_then_failing(prefix: &str) -> RetriedFlow {
    let (executions, persisted_bodies, plain_bodies) = (
        Arc::new(AtomicU32::new(0)),
        Arc::new(AtomicU32::new(0)),
        Arc::new(AtomicU32::new(0)),
    );
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<LocalStorage> = Arc::new(LocalStorage::new(dir.path()));
    let (e, p, q) = (executions.clone(), persisted_bodies.clone(), plain_bodies.clone());
    let flow = RustFlow::without_parameters(&unique(prefix), move |ctx: RunContext| {
        let execution = e.fetch_add(1, Ordering::SeqCst);
        let (p, q, storage) = (p.clone(), q.clone(), storage.clone());
        async move {
            let rows: u64 = ctx
                .task("extract")
                .persisted()
                .storage(storage)
                .run(|| {
                    p.fetch_add(1, Ordering::SeqCst);
                    async { Ok::<_, std::io::Error>(42) }
                })
                .await?;
            ctx.task("count")
                .run(|| {
                    q.fetch_add(1, Ordering::SeqCst);
                    async { Ok::<_, std::io::Error>(()) }
                })
                .await?;
            if execution == 0 {
                return Err::<u64, BoxError>("the first execution fails after its tasks".into());
            }
            Ok(rows)
        }
    });
    RetriedFlow {
        flow,
        executions,
        persisted_bodies,
        plain_bodies,
        _storage: dir,
    }
}

#[tokio::test]
async fn retry_from_the_ui_reuses_the_persisted_task_and_completes() {
    let client = client().await;
    let retried = persisted_then_failing("rust-ui-retry");
    let polling = ServeSettings::default().poll_interval(Duration::from_secs(1));
    let (serving, deployment) = serve_with(
        &client,
        &retried.flow,
        retried.flow.deployment("retried"),
        polling,
    )
    .await;
    let run = client.deployments().create_run(deployment).await.unwrap().id;
    let failed = wait_final(&client, &[run], Duration::from_secs(60)).await;
    assert_eq!(failed[&run].state_type, Some(StateType::Failed));
    retry_as_the_ui_does(common::server().await.api_url(), run).await;
    let ended = wait_for_run(&client, run, Duration::from_secs(60), "ended again", |r| {
        r.run_count >= 2
            && r.state_type
                .as_ref()
                .is_some_and(prefect_client::resources::flow_runs::is_final)
    })
    .await;
    assert_eq!(
        ended.state_type,
        Some(StateType::Completed),
        "{:?} {:?}",
        ended.state,
        history(&client, run).await
    );
    assert_eq!(retried.executions.load(Ordering::SeqCst), 2);
    assert_eq!(
        retried.persisted_bodies.load(Ordering::SeqCst),
        1,
        "the persisted task's value was read back, not computed again"
    );
    assert_eq!(
        retried.plain_bodies.load(Ordering::SeqCst),
        2,
        "a plain task runs again"
    );
    // Each execution has task runs of its own: the second one's persisted task is "Cached".
    let tasks = task_runs_of(&client, run).await;
    assert_eq!(tasks.len(), 4, "{tasks:?}");
    assert!(
        tasks.iter().all(|t| t.state_type == Some(StateType::Completed)),
        "{:?}",
        tasks.iter().map(|t| (&t.name, &t.state_name)).collect::<Vec<_>>()
    );
    assert_eq!(
        tasks
            .iter()
            .filter(|t| t.state_name.as_deref() == Some("Cached"))
            .count(),
        1
    );
    shut_down(serving).await;
}

#[tokio::test]
async fn an_in_process_flow_retry_reuses_the_persisted_task() {
    let client = client().await;
    let retried = persisted_then_failing("rust-in-process-retry");
    let flow = retried.flow.clone().retries(1, Duration::from_secs(1));
    let (serving, run) = serve_and_run(&client, &flow, flow.deployment("retried")).await;
    let ended = wait_final(&client, &[run], Duration::from_secs(60)).await;
    assert_eq!(ended[&run].state_type, Some(StateType::Completed));
    assert_eq!(ended[&run].run_count, 2);
    assert_eq!(retried.persisted_bodies.load(Ordering::SeqCst), 1);
    assert_eq!(retried.plain_bodies.load(Ordering::SeqCst), 2);
    shut_down(serving).await;
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Boom {
    #[serde(default)]
    boom: bool,
}

#[tokio::test]
async fn a_handler_that_panics_before_its_future_ends_its_run_and_frees_the_deployment_slot() {
    let client = client().await;
    let name = unique("rust-panicking-handler");
    let flow = RustFlow::new(&name, |_ctx: RunContext, p: Boom| {
        if p.boom {
            panic!("the handler panicked before its future");
        }
        async move { Ok::<_, BoxError>(()) }
    });
    let spec = flow
        .deployment("limited")
        .concurrency_limit(1, CollisionStrategy::Enqueue);
    let polling = ServeSettings::default().poll_interval(Duration::from_secs(1));
    let (serving, deployment) = serve_with(&client, &flow, spec, polling).await;
    let boom = create_run_with(&client, deployment, serde_json::json!({ "boom": true })).await;
    let ended = wait_final(&client, &[boom], Duration::from_secs(30)).await;
    let ended = &ended[&boom];
    assert_eq!(ended.state_type, Some(StateType::Crashed), "{:?}", ended.state);
    let message = state_message(ended);
    assert!(message.contains("panicked before its future"), "{message}");
    // The slot was given back: the next run of the limit of one completes.
    let next = client.deployments().create_run(deployment).await.unwrap();
    completes(&client, next.id, Duration::from_secs(60)).await;
    shut_down(serving).await;
}

/// The heartbeat events stored for a run (waiting up to `within` for at least one).
async fn heartbeats_of(
    client: &Client,
    run: Uuid,
    within: Duration,
) -> Vec<prefect_client::types::ReceivedEvent> {
    let now = chrono::Utc::now();
    let filter = heartbeats_of_run(
        run,
        now - chrono::Duration::hours(1),
        Some(now + chrono::Duration::hours(1)),
    );
    let filter = &filter;
    let read = || async move { client.events().list_page(filter).await.unwrap().events };
    poll_until(within, Duration::from_millis(500), read, |events| {
        !events.is_empty()
    })
    .await
}

#[tokio::test]
async fn served_runs_beat_by_default_and_as_the_legacy_setting_says_with_their_related_resources() {
    let api_url = common::server().await.api_url().to_string();
    let name = unique("rust-beating");
    let tags = ["beats", "rust"];
    let sleeping = |name: &str| {
        RustFlow::without_parameters(name, |_ctx: RunContext| async {
            tokio::time::sleep(Duration::from_secs(4)).await;
            Ok::<_, BoxError>(())
        })
    };
    // Prefect's legacy name for the setting, as Prefect 3.8 still reads it.
    let env = [
        ("PREFECT_API_URL", api_url.clone()),
        ("PREFECT_RUNNER_HEARTBEAT_FREQUENCY", "1".to_string()),
    ];
    let config = Config::from_lookup(|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap();
    assert_eq!(config.flow_heartbeat(), Some(Duration::from_secs(1)));
    let legacy = Client::from_config(config).unwrap();
    let flow = sleeping(&name);
    let spec = flow.deployment("beating").tags(tags);
    let (serving, deployment) = serve(&legacy, &flow, spec).await;
    let run = legacy.deployments().create_run(deployment).await.unwrap().id;
    let ended = wait_final(&legacy, &[run], Duration::from_secs(60)).await;
    assert_eq!(ended[&run].state_type, Some(StateType::Completed));
    shut_down(serving).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let beats = heartbeats_of(&legacy, run, Duration::from_secs(20)).await;
    assert!(beats.len() >= 3, "a beat a second for 4 s: {}", beats.len());
    let beat = &beats[0];
    let roles: Vec<(String, String)> = beat
        .related
        .iter()
        .map(|r| {
            (
                r.get("prefect.resource.role").cloned().unwrap_or_default(),
                r.get("prefect.resource.id").cloned().unwrap_or_default(),
            )
        })
        .collect();
    let flow_id = ended[&run].flow_id;
    assert!(
        roles.contains(&("flow".into(), format!("prefect.flow.{flow_id}"))),
        "{roles:?}"
    );
    assert!(
        roles.contains(&("deployment".into(), format!("prefect.deployment.{deployment}"))),
        "{roles:?}"
    );
    for tag in tags {
        assert!(
            roles.contains(&("tag".into(), format!("prefect.tag.{tag}"))),
            "{roles:?}"
        );
    }
    // With no setting at all, a run beats too (Prefect's default, every 180 s: once here).
    let default = Client::builder(&api_url).build().unwrap();
    assert_eq!(default.config().flow_heartbeat(), Some(Duration::from_secs(180)));
    let report = default
        .new_flow_run(&unique("rust-beating-default"))
        .run(|_ctx| async { Ok::<_, BoxError>(()) })
        .await
        .unwrap();
    assert!(report.outcome.is_completed());
    tokio::time::sleep(Duration::from_secs(6)).await;
    let beats = heartbeats_of(&default, report.flow_run_id, Duration::from_secs(20)).await;
    assert!(!beats.is_empty(), "a run beats by default");
}

/// CPU time this thread used so far, in clock ticks (Linux: `/proc/thread-self/stat`).
#[cfg(target_os = "linux")]
fn thread_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // utime and stime: fields 14 and 15 of the line, 12 and 13 after the command's ")".
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// The test's runtime has one thread, and the serving loop runs on it: what that thread
/// spends while the test sleeps is the idle loop's cost.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "current_thread")]
async fn serving_whose_handle_was_dropped_serves_on_and_idles_at_no_cost() {
    let client = client().await;
    let name = unique("rust-dropped-handle");
    let flow = trivial(&name);
    let (serving, deployment) = serve(&client, &flow, flow.deployment("dropped")).await;
    drop(serving);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = thread_cpu_ticks();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let spent = thread_cpu_ticks() - before;
    // A loop spinning on a closed channel spends all 3 s (about 300 ticks).
    assert!(spent < 60, "the idle loop spent {spent} ticks of CPU in 3 s");
    // It still serves.
    let run = client.deployments().create_run(deployment).await.unwrap().id;
    completes(&client, run, Duration::from_secs(60)).await;
}

/// A run found SCHEDULED that another process claims, executes and completes before this
/// process's claim reaches the server: the server takes that late claim (PENDING from
/// COMPLETED), and the run must neither run again nor stay PENDING; serving reports it skipped.
#[tokio::test]
async fn a_claim_that_reaches_the_server_after_another_process_executed_the_run_is_given_up() {
    use futures_util::StreamExt;
    use prefect_client::serve::RunEnd;

    let client = client().await;
    let proxy = common::proxy::FaultProxy::start(client.api_url()).await;
    let late = Client::builder(&proxy.api_url).build().unwrap();
    let executed = Arc::new(AtomicU32::new(0));
    let counter = executed.clone();
    let flow = RustFlow::without_parameters(&unique("rust-claim-race"), move |_ctx: RunContext| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, common::serving::BoxError>(()) }
    });
    let serving = late
        .serve([&flow])
        .deployment(flow.deployment("race"))
        .start()
        .await
        .unwrap();
    let mut ended = serving.ended_runs();
    // The serving process's first write about a flow run (its claim) reaches the server 5 s late.
    proxy.inject(
        "POST",
        "/flow_runs/",
        common::proxy::Fault::StallBefore(Duration::from_secs(5)),
        1,
    );
    let run = client
        .deployments()
        .create_run(serving.deployments()[0].id)
        .await
        .unwrap()
        .id;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while proxy.faults_applied() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "serving never claimed the run"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Meanwhile another process takes it, runs it and ends it.
    for state in [StateType::Pending, StateType::Running, StateType::Completed] {
        client.flow_runs().set_state(run, state).await.unwrap();
    }
    let end = tokio::time::timeout(Duration::from_secs(60), ended.next())
        .await
        .expect("the claim's end within 60 s")
        .expect("serving goes on");
    assert_eq!(end.flow_run_id, run);
    assert!(
        matches!(&end.end, RunEnd::Skipped { reason } if reason.contains("another process executed it")),
        "{end:?}"
    );
    let stalled = proxy
        .log()
        .into_iter()
        .find(|entry| entry.contains("StallBefore"));
    assert!(
        stalled
            .as_deref()
            .is_some_and(|e| e.starts_with(&format!("POST /api/flow_runs/{run}/set_state"))),
        "the late request was the claim: {stalled:?}"
    );
    assert_eq!(executed.load(Ordering::SeqCst), 0, "the run was executed again");
    let found = client.flow_runs().get(run).await.unwrap();
    assert_eq!(found.state_type, Some(StateType::Completed), "{:?}", found.state);
    assert_eq!(found.run_count, 1);
    serving.shutdown();
    serving.wait().await.unwrap();
}
