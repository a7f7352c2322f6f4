//! Prefect runs Rust code, against real servers: deployments served by the `serve` example (and
//! by `client.serve` in this process), runs created by Prefect's Python client, its scheduler and
//! its UI's API, cancelled from Python, the serving process SIGTERMed and SIGKILLed, the server
//! stopped under it, deployment concurrency limits, Prefect's own process worker running the
//! example binary, and the Rust worker on a pool.
//!
//! The `serve` example always serves `rust-serve-example/example`: each test using it has a
//! server of its own.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use futures_util::TryStreamExt;
use prefect_client::resources::deployments::{CollisionStrategy, DeploymentSpec, Schedule};
use prefect_client::runs::RunContext;
use prefect_client::serve::RustFlow;
use prefect_client::types::StateType;
use prefect_client::{Client, Error};
use prefect_testkit::{LocalServer, LocalServerBuilder};
use serde_json::json;
use uuid::Uuid;

use common::serving::{
    Process, example, history, python, python_cancel, python_runs, serve_example, task_runs_of, wait_final,
};
use common::{client, unique};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A server of this test's own (the example's deployment name is fixed), with the services
/// fast: expired leases freed every second, AwaitingConcurrencySlot runs back after a second.
fn own_server() -> LocalServerBuilder {
    LocalServer::builder()
        .env("PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS", "1")
        .env("PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS", "1")
}

/// Log lines of a run that say a row was done: one per task run executed.
async fn rows_logged(client: &Client, run: Uuid) -> usize {
    let logs: Vec<_> = client.flow_runs().logs(run).try_collect().await.unwrap();
    logs.iter().filter(|l| l.message.starts_with("row done")).count()
}

#[tokio::test]
async fn two_serving_processes_execute_fifty_python_created_runs_each_once() {
    let server = own_server().start().await.unwrap();
    let client = server.client().unwrap();
    let (_a, deployment) = serve_example(server.api_url(), &[]).await;
    let (_b, again) = serve_example(server.api_url(), &[]).await;
    assert_eq!(
        deployment, again,
        "the second process upserted the same deployment"
    );
    let runs = python_runs(
        server.api_url(),
        "rust-serve-example/example",
        r#"{"rows": 2, "sleep_s": 0.05}"#,
        50,
    )
    .await;
    assert_eq!(runs.len(), 50);
    let ended = wait_final(&client, &runs, Duration::from_secs(240)).await;
    for (id, run) in &ended {
        let states = history(&client, *id).await;
        assert_eq!(run.state_type, Some(StateType::Completed), "{id}: {states:?}");
        assert_eq!(run.run_count, 1, "{id} ran once: {states:?}");
        assert_eq!(task_runs_of(&client, *id).await.len(), 2, "{id}: its rows");
    }
    // Executed once: each task run logged its row once (a second execution logs again).
    tokio::time::sleep(Duration::from_secs(3)).await;
    for id in &runs {
        assert_eq!(rows_logged(&client, *id).await, 2, "{id}");
    }
}

#[tokio::test]
async fn a_sigterm_lets_the_run_finish_a_second_stops_it_at_once_and_nothing_is_left_running() {
    let server = own_server().start().await.unwrap();
    let client = server.client().unwrap();
    let (mut serving, _) = serve_example(server.api_url(), &[]).await;
    let runs = python_runs(
        server.api_url(),
        "rust-serve-example/example",
        r#"{"rows": 3, "sleep_s": 1}"#,
        1,
    )
    .await;
    client
        .flow_runs()
        .wait_for_state(runs[0], &[StateType::Running], Duration::from_secs(30))
        .await
        .unwrap();
    serving.terminate();
    assert_eq!(serving.exit_code(Duration::from_secs(60)).await, Some(0));
    let run = client.flow_runs().get(runs[0]).await.unwrap();
    assert_eq!(
        run.state_type,
        Some(StateType::Completed),
        "the grace period let it finish"
    );
    // A run it could not finish within the grace period: scheduled again, not left running.
    let (mut serving, _) = serve_example(server.api_url(), &[]).await;
    let long = python_runs(
        server.api_url(),
        "rust-serve-example/example",
        r#"{"rows": 1, "sleep_s": 120}"#,
        1,
    )
    .await;
    client
        .flow_runs()
        .wait_for_state(long[0], &[StateType::Running], Duration::from_secs(30))
        .await
        .unwrap();
    serving.terminate();
    assert_eq!(serving.exit_code(Duration::from_secs(90)).await, Some(0));
    let run = client.flow_runs().get(long[0]).await.unwrap();
    assert_eq!(run.state_type, Some(StateType::Scheduled), "{:?}", run.state_name);
    assert_eq!(run.state_name.as_deref(), Some("AwaitingRetry"));
    for task in task_runs_of(&client, long[0]).await {
        assert!(
            !matches!(task.state_type, Some(StateType::Running | StateType::Pending)),
            "a task run left {:?}",
            task.state_type
        );
    }
    // The next process picks it up (it sleeps again: a new attempt).
    let (mut serving, _) = serve_example(server.api_url(), &[]).await;
    client
        .flow_runs()
        .wait_for_state(long[0], &[StateType::Running], Duration::from_secs(30))
        .await
        .unwrap();
    // A second SIGTERM ends the grace period (30 s) at once: the run is scheduled again now.
    serving.terminate();
    tokio::time::sleep(Duration::from_secs(1)).await;
    serving.terminate();
    assert_eq!(serving.exit_code(Duration::from_secs(25)).await, Some(0));
    let run = client.flow_runs().get(long[0]).await.unwrap();
    assert_eq!(run.state_type, Some(StateType::Scheduled), "{:?}", run.state_name);
    assert_eq!(run.run_count, 2, "{:?}", history(&client, long[0]).await);
}

#[tokio::test]
async fn a_sigkilled_process_s_run_is_crashed_by_the_zombie_automation_and_a_new_process_serves_on() {
    let server = own_server().start().await.unwrap();
    let client = server.client().unwrap();
    create_zombie_automation(&client).await;
    let beat = [("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "1".to_string())];
    let (serving, _) = serve_example(server.api_url(), &beat).await;
    let runs = python_runs(
        server.api_url(),
        "rust-serve-example/example",
        r#"{"rows": 1, "sleep_s": 300}"#,
        1,
    )
    .await;
    client
        .flow_runs()
        .wait_for_state(runs[0], &[StateType::Running], Duration::from_secs(30))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    serving.kill();
    let crashed = client
        .flow_runs()
        .wait_for_completion(runs[0], Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(crashed.state_type, Some(StateType::Crashed));
    let (_next, _) = serve_example(server.api_url(), &beat).await;
    let next = python_runs(
        server.api_url(),
        "rust-serve-example/example",
        r#"{"rows": 1}"#,
        1,
    )
    .await;
    let ended = wait_final(&client, &next, Duration::from_secs(60)).await;
    assert_eq!(ended[&next[0]].state_type, Some(StateType::Completed));
}

/// Prefect's documented zombie-run automation, with a 10 s window for heartbeats every second.
async fn create_zombie_automation(client: &Client) {
    let automation: prefect_client::types::AutomationCreate = serde_json::from_value(json!({
        "name": unique("crash-zombie-flows"),
        "trigger": {
            "type": "event",
            "posture": "Proactive",
            "after": ["prefect.flow-run.heartbeat"],
            "expect": ["prefect.flow-run.*"],
            "match": { "prefect.resource.id": ["prefect.flow-run.*"] },
            "for_each": ["prefect.resource.id"],
            "threshold": 1,
            "within": 10
        },
        "actions": [{
            "type": "change-flow-run-state",
            "state": "CRASHED",
            "message": "no heartbeat for 10 s: the process running it is gone"
        }]
    }))
    .unwrap();
    client.raw().create_automation(&automation).await.unwrap();
}

#[tokio::test]
async fn the_server_stopped_20_s_does_not_end_serving_and_later_runs_execute() {
    let home = tempfile::tempdir().unwrap();
    let port = prefect_testkit::free_port().unwrap();
    let mut server = own_server()
        .port(port)
        .start_with_home(home.path())
        .await
        .unwrap();
    let client = server.client().unwrap();
    let (mut serving, _) = serve_example(server.api_url(), &[]).await;
    server.stop();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let server = own_server()
        .port(port)
        .start_with_home(home.path())
        .await
        .unwrap();
    assert!(
        serving.child.try_wait().unwrap().is_none(),
        "the serving process carried on:\n{}",
        serving.output()
    );
    let runs = python_runs(
        server.api_url(),
        "rust-serve-example/example",
        r#"{"rows": 1}"#,
        3,
    )
    .await;
    let ended = wait_final(&client, &runs, Duration::from_secs(90)).await;
    assert!(ended.values().all(|r| r.state_type == Some(StateType::Completed)));
    serving.terminate();
    assert_eq!(serving.exit_code(Duration::from_secs(60)).await, Some(0));
}

/// Creates the work pool `pool` as `prefect work-pool create --type process` does: with the
/// process worker's base job template (whose variables include `command`).
async fn create_process_pool(api_url: &str, pool: &str) {
    python(
        api_url,
        "import asyncio, sys\n\
         from prefect.client.orchestration import get_client\n\
         from prefect.client.schemas.actions import WorkPoolCreate\n\
         from prefect.workers.process import ProcessWorker\n\
         async def main():\n    \
             async with get_client() as client:\n        \
                 await client.create_work_pool(WorkPoolCreate(name=sys.argv[1], type='process', \
                     base_job_template=ProcessWorker.get_default_base_job_template()))\n\
         asyncio.run(main())\n",
        &[pool],
    )
    .await;
}

#[tokio::test]
async fn prefects_own_process_worker_runs_the_example_binary_as_a_deployments_command() {
    let server = own_server().start().await.unwrap();
    let client = server.client().unwrap();
    let pool = "process-pool";
    let command = example("serve").display().to_string();
    create_process_pool(server.api_url(), pool).await;
    let deployment = client
        .deployments()
        .apply(
            &DeploymentSpec::new("rust-serve-example", "via-process-worker")
                .work_pool(pool)
                .job_variables(&json!({ "command": command })),
        )
        .await
        .unwrap();
    // A misspelt job variable is refused: the process worker would ignore it.
    let err = client
        .deployments()
        .apply(
            &DeploymentSpec::new("rust-serve-example", "misspelt")
                .work_pool(pool)
                .job_variables(&json!({ "comand": command })),
        )
        .await
        .unwrap_err();
    assert!(
        err.is_client_side() && err.to_string().contains("\"comand\"") && err.to_string().contains("command"),
        "{err}"
    );
    let venv = prefect_testkit::ensure_venv().unwrap();
    let home = tempfile::tempdir().unwrap();
    let (_worker, _) = Process::start_with_args(
        &venv.join("bin/prefect"),
        &["worker", "start", "--pool", pool, "--type", "process"],
        &[
            ("PREFECT_API_URL", server.api_url().to_string()),
            ("PREFECT_HOME", home.path().display().to_string()),
            ("PREFECT_WORKER_QUERY_SECONDS", "1".to_string()),
        ],
        "started",
        Duration::from_secs(60),
    )
    .await;
    let run = client
        .deployments()
        .run(deployment.id)
        .parameters(&json!({ "rows": 2 }))
        .await
        .unwrap();
    let ended = wait_final(&client, &[run.id], Duration::from_secs(120)).await;
    assert_eq!(ended[&run.id].state_type, Some(StateType::Completed));
    assert_eq!(task_runs_of(&client, run.id).await.len(), 2);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rows_logged(&client, run.id).await, 2, "its logs arrived");
}

#[tokio::test]
async fn a_misspelt_per_run_job_variable_is_refused_before_the_run_is_created() {
    let server = own_server().start().await.unwrap();
    let client = server.client().unwrap();
    let pool = "process-pool";
    create_process_pool(server.api_url(), pool).await;
    let deployment = client
        .deployments()
        .apply(&DeploymentSpec::new("rust-serve-example", "per-run-variables").work_pool(pool))
        .await
        .unwrap();
    let runs = || async {
        client
            .flow_runs()
            .list_page(&Default::default())
            .await
            .unwrap()
            .len()
    };
    let err = client
        .deployments()
        .run(deployment.id)
        .job_variables(&json!({ "comand": "echo hi" }))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, Error::InvalidInput { .. })
            && text.contains("\"comand\"")
            && text.contains("command")
            && text.contains(pool),
        "{text}"
    );
    assert_eq!(runs().await, 0, "nothing was created");
    // The pool's own variable is taken.
    let run = client
        .deployments()
        .run(deployment.id)
        .job_variables(&json!({ "command": "echo hi" }))
        .await
        .unwrap();
    assert_eq!(
        run.job_variables.as_ref().map(|v| &v["command"]),
        Some(&json!("echo hi"))
    );
    // A deployment without a work pool has no variables to check against.
    let served = client
        .deployments()
        .apply(&DeploymentSpec::new("rust-serve-example", "no-pool"))
        .await
        .unwrap();
    client
        .deployments()
        .run(served.id)
        .job_variables(&json!({ "anything": 1 }))
        .await
        .unwrap();
    assert_eq!(runs().await, 2);
}

#[tokio::test]
async fn a_deployment_limit_of_one_never_runs_two_at_once() {
    let server = own_server().start().await.unwrap();
    let client = server.client().unwrap();
    // The example applies its spec (no limit) when it starts: give the deployment a limit after,
    // as the UI would.
    let (_serving, deployment) = serve_example(server.api_url(), &[]).await;
    let spec = DeploymentSpec::new("rust-serve-example", "example")
        .concurrency_limit(1, CollisionStrategy::Enqueue)
        .concurrency_grace_period(Duration::from_secs(60));
    let limited = client.deployments().apply(&spec).await.unwrap();
    assert_eq!(limited.id, deployment);
    assert!(limited.global_concurrency_limit.is_some());
    let runs = python_runs(
        server.api_url(),
        "rust-serve-example/example",
        r#"{"rows": 1, "sleep_s": 1}"#,
        5,
    )
    .await;
    let mut peak = 0;
    let started = tokio::time::Instant::now();
    loop {
        let mut running = 0;
        let mut done = 0;
        for id in &runs {
            match client.flow_runs().get(*id).await.unwrap().state_type {
                Some(StateType::Running) => running += 1,
                Some(StateType::Completed) => done += 1,
                _ => {}
            }
        }
        peak = peak.max(running);
        if done == runs.len() || started.elapsed() > Duration::from_secs(120) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(peak, 1, "never two at once");
    assert_eq!(
        wait_final(&client, &runs, Duration::from_secs(5)).await.len(),
        runs.len()
    );
}

#[tokio::test]
async fn a_sigkilled_holder_of_a_deployment_slot_gives_it_back() {
    let server = own_server().start().await.unwrap();
    let client = server.client().unwrap();
    let (mut serving, deployment) = serve_example(server.api_url(), &[]).await;
    let spec =
        DeploymentSpec::new("rust-serve-example", "example").concurrency_limit(1, CollisionStrategy::Enqueue);
    client.deployments().apply(&spec).await.unwrap();
    let limit_name = format!("deployment:{deployment}");
    let held = python_runs(
        server.api_url(),
        "rust-serve-example/example",
        r#"{"rows": 1, "sleep_s": 300}"#,
        1,
    )
    .await;
    client
        .flow_runs()
        .wait_for_state(held[0], &[StateType::Running], Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(common::active_slots(&client, &limit_name).await, 1);
    serving.kill();
    let _ = serving.exit_code(Duration::from_secs(10)).await;
    // The killed process renewed its lease for 300 s at a time, as Prefect's engine does: the
    // server frees it after.
    let freed = common::wait_until_slots(&client, &limit_name, 0, Duration::from_secs(360)).await;
    assert_eq!(freed, 0, "the slot came back");
}

#[tokio::test]
async fn an_interval_schedule_s_runs_made_by_prefects_scheduler_execute() {
    let client = client().await;
    let name = unique("rust-scheduled");
    let flow = RustFlow::without_parameters(&name, |_ctx: RunContext| async { Ok::<_, BoxError>(()) });
    let serving = client
        .serve([&flow])
        .deployment(
            flow.deployment("every-minute")
                .schedule(Schedule::interval(Duration::from_secs(60))),
        )
        .start()
        .await
        .unwrap();
    let deployment = serving.deployments()[0].id;
    // The scheduler made runs ahead; the first one due now starts.
    let started = tokio::time::Instant::now();
    let completed = loop {
        let runs: Vec<_> = client
            .flow_runs()
            .stream(prefect_client::query::FlowRunQuery {
                deployments: Some(prefect_client::query::DeploymentFilter {
                    id: Some(prefect_client::query::DeploymentFilterId {
                        any: Some(vec![deployment]),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .try_collect()
            .await
            .unwrap();
        if let Some(run) = runs.iter().find(|r| r.state_type == Some(StateType::Completed)) {
            break run.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(150),
            "no scheduled run completed: {:?}",
            runs.iter()
                .map(|r| (&r.state_name, r.expected_start_time))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert!(completed.auto_scheduled, "made by the scheduler");
    serving.shutdown();
    serving.wait().await.unwrap();
}

#[tokio::test]
async fn a_run_cancelled_from_python_ends_cancelled_with_its_task_run_and_the_process_serves_on() {
    let client = client().await;
    let name = unique("rust-cancelled");
    let flow = RustFlow::new(&name, |ctx: RunContext, p: SleepParams| async move {
        ctx.task("sleepy")
            .run(|| async move {
                tokio::time::sleep(Duration::from_secs_f64(p.sleep_s)).await;
                Ok::<_, BoxError>(())
            })
            .await?;
        Ok::<_, BoxError>(())
    });
    let serving = client
        .serve([&flow])
        .deployment(flow.deployment("cancel"))
        .start()
        .await
        .unwrap();
    let deployment = serving.deployments()[0].id;
    let run = client
        .deployments()
        .run(deployment)
        .parameters(&json!({ "sleep_s": 300 }))
        .await
        .unwrap();
    client
        .flow_runs()
        .wait_for_state(run.id, &[StateType::Running], Duration::from_secs(30))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let asked = tokio::time::Instant::now();
    python_cancel(client.api_url(), run.id).await;
    let cancelled = client
        .flow_runs()
        .wait_for_completion(run.id, Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!(cancelled.state_type, Some(StateType::Cancelled));
    eprintln!("cancelled {:?} after it was asked", asked.elapsed());
    for task in task_runs_of(&client, run.id).await {
        assert_ne!(
            task.state_type,
            Some(StateType::Running),
            "a task run left running"
        );
    }
    let next = client
        .deployments()
        .run(deployment)
        .parameters(&json!({ "sleep_s": 0 }))
        .await
        .unwrap();
    let ended = wait_final(&client, &[next.id], Duration::from_secs(30)).await;
    assert_eq!(ended[&next.id].state_type, Some(StateType::Completed));
    serving.shutdown();
    serving.wait().await.unwrap();
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct SleepParams {
    #[serde(default)]
    sleep_s: f64,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct RowsParams {
    rows: u64,
}

#[tokio::test]
async fn bad_parameters_are_refused_at_creation_when_enforced_and_fail_the_run_naming_the_field_otherwise() {
    let client = client().await;
    let name = unique("rust-params");
    let flow = RustFlow::new(&name, |_ctx: RunContext, p: RowsParams| async move {
        Ok::<_, BoxError>(p.rows)
    });
    let serving = client
        .serve([&flow])
        .deployment(flow.deployment("enforced"))
        .deployment(flow.deployment("lenient").enforce_parameter_schema(false))
        .start()
        .await
        .unwrap();
    let (enforced, lenient) = (serving.deployments()[0].id, serving.deployments()[1].id);
    let refused = client
        .deployments()
        .run(enforced)
        .parameters(&json!({ "rows": "many" }))
        .await
        .unwrap_err();
    assert!(
        matches!(refused.status().map(|s| s.as_u16()), Some(409 | 422)),
        "the server refuses it: {refused}"
    );
    let run = client
        .deployments()
        .run(lenient)
        .parameters(&json!({ "rows": "many" }))
        .await
        .unwrap();
    let failed = wait_final(&client, &[run.id], Duration::from_secs(30)).await;
    let failed = &failed[&run.id];
    assert_eq!(failed.state_type, Some(StateType::Failed));
    let message = failed
        .state
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    assert!(message.contains("`rows`"), "{message}");
    // The process goes on.
    let good = client
        .deployments()
        .run(lenient)
        .parameters(&json!({ "rows": 2 }))
        .await
        .unwrap();
    let ended = wait_final(&client, &[good.id], Duration::from_secs(30)).await;
    assert_eq!(ended[&good.id].state_type, Some(StateType::Completed));
    serving.shutdown();
    serving.wait().await.unwrap();
}

/// A flow that completes at once.
fn trivial(name: &str) -> RustFlow {
    RustFlow::without_parameters(name, |_ctx: RunContext| async move { Ok::<_, BoxError>(()) })
}

/// Waits for `run` to end (at most `within`) and requires it COMPLETED.
async fn completes(client: &Client, run: Uuid, within: Duration) {
    let ended = wait_final(client, &[run], within).await;
    assert_eq!(
        ended[&run].state_type,
        Some(StateType::Completed),
        "{:?}",
        ended[&run].state
    );
}

/// A flow whose first attempt fails and whose later ones sleep `sleep`; its attempts so far.
fn failing_once_then_sleeping(
    name: &str,
    sleep: Duration,
) -> (RustFlow, std::sync::Arc<std::sync::atomic::AtomicU32>) {
    let attempts = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = attempts.clone();
    let flow = RustFlow::without_parameters(name, move |_ctx: RunContext| {
        let attempt = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            if attempt == 0 {
                return Err::<(), BoxError>("the first attempt fails".into());
            }
            tokio::time::sleep(sleep).await;
            Ok(())
        }
    });
    (flow, attempts)
}

#[tokio::test]
async fn a_served_run_with_retries_and_a_timeout_runs_again_in_process_then_times_out() {
    let client = client().await;
    let name = unique("rust-retried");
    let (flow, attempts) = failing_once_then_sleeping(&name, Duration::from_secs(60));
    let flow = flow
        .retries(1, Duration::from_secs(1))
        .timeout(Duration::from_secs(2))
        .version("1.2.3");
    let serving = client
        .serve([&flow])
        .deployment(flow.deployment("retried"))
        .start()
        .await
        .unwrap();
    let run = client
        .deployments()
        .run(serving.deployments()[0].id)
        .await
        .unwrap();
    let ended = wait_final(&client, &[run.id], Duration::from_secs(60)).await;
    let ended = &ended[&run.id];
    assert_eq!(ended.state_type, Some(StateType::Failed));
    assert_eq!(ended.state_name.as_deref(), Some("TimedOut"));
    assert_eq!(ended.run_count, 2, "one retry, in process");
    assert_eq!(ended.flow_version.as_deref(), Some("1.2.3"));
    assert_eq!(
        ended.infrastructure_pid.as_deref(),
        Some(std::process::id().to_string().as_str())
    );
    let names: Vec<_> = history(&client, run.id)
        .await
        .into_iter()
        .filter_map(|(_, n)| n)
        .collect();
    assert!(names.iter().any(|n| n == "AwaitingRetry"), "{names:?}");
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 2);
    serving.shutdown();
    serving.wait().await.unwrap();
}

#[tokio::test]
async fn the_rust_worker_shows_online_and_its_pools_limit_of_two_holds() {
    let client = client().await;
    let pool = unique("rust-pool");
    let name = unique("rust-worked");
    let flow = RustFlow::new(&name, |_ctx: RunContext, p: SleepParams| async move {
        tokio::time::sleep(Duration::from_secs_f64(p.sleep_s)).await;
        Ok::<_, BoxError>(())
    });
    let working = client
        .worker(&pool, [&flow])
        .create_pool(true)
        .heartbeat(Duration::from_secs(5))
        .start()
        .await
        .unwrap();
    let workers = client
        .raw()
        .read_workers(&pool, &Default::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(workers.len(), 1);
    assert_eq!(
        workers[0].status.as_ref().map(|s| s.to_string()),
        Some("ONLINE".into())
    );
    client
        .raw()
        .update_work_pool(
            &pool,
            &prefect_client::types::WorkPoolUpdate {
                concurrency_limit: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let deployment = client
        .deployments()
        .apply(&flow.deployment("in-pool").work_pool(&pool))
        .await
        .unwrap();
    let mut runs = Vec::new();
    for _ in 0..5 {
        runs.push(
            client
                .deployments()
                .run(deployment.id)
                .parameters(&json!({ "sleep_s": 1.5 }))
                .await
                .unwrap()
                .id,
        );
    }
    let mut peak = 0;
    let started = tokio::time::Instant::now();
    loop {
        let mut running = 0;
        let mut done = 0;
        for id in &runs {
            match client.flow_runs().get(*id).await.unwrap().state_type {
                Some(StateType::Running | StateType::Pending) => running += 1,
                Some(StateType::Completed) => done += 1,
                _ => {}
            }
        }
        peak = peak.max(running);
        if done == runs.len() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the runs did not all complete"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(peak <= 2, "the pool's limit of two held: {peak}");
    let run = client.flow_runs().get(runs[0]).await.unwrap();
    assert_eq!(
        run.labels.get("prefect.work-pool.name").map(|v| v.to_string()),
        Some(pool.clone())
    );
    working.shutdown();
    working.wait().await.unwrap();
}

#[tokio::test]
async fn deployments_from_code_upsert_their_schedules_schema_and_limit() {
    let client = client().await;
    let name = unique("rust-deployed");
    let flow = RustFlow::new(&name, |_ctx: RunContext, p: RowsParams| async move {
        Ok::<_, BoxError>(p.rows)
    });
    let spec = flow
        .deployment("coded")
        .schedule(Schedule::cron("0 9 * * 1-5").timezone("Europe/Berlin"))
        .schedule(Schedule::interval(Duration::from_secs(3600)).active(false))
        .schedule(Schedule::rrule("FREQ=DAILY;BYHOUR=10").timezone("America/New_York"))
        .parameters(&json!({ "rows": 5 }))
        .tags(["rust", "coded"])
        .description("made from code")
        .version("7")
        .concurrency_limit(2, CollisionStrategy::CancelNew);
    let deployments = client.deployments();
    let first = deployments.apply(&spec).await.unwrap();
    assert_eq!(
        first.parameter_openapi_schema.as_ref().unwrap()["properties"]["rows"]["type"],
        "integer"
    );
    assert!(first.enforce_parameter_schema);
    assert_eq!(first.global_concurrency_limit.as_ref().unwrap().limit, 2);
    assert_eq!(deployments.schedules(first.id).list().await.unwrap().len(), 3);
    // Applied again with one schedule and no limit: the same deployment, now so.
    let again = deployments
        .apply(&flow.deployment("coded").schedule(Schedule::cron("30 8 * * *")))
        .await
        .unwrap();
    assert_eq!(again.id, first.id, "an upsert by flow and name");
    let schedules = deployments.schedules(again.id).list().await.unwrap();
    assert_eq!(schedules.len(), 1);
    assert!(again.global_concurrency_limit.is_none(), "the limit went");
    // One schedule added, switched off, removed.
    let added = deployments
        .schedules(again.id)
        .add(&Schedule::interval(Duration::from_secs(600)))
        .await
        .unwrap();
    deployments
        .schedules(again.id)
        .set_active(added.id, false)
        .await
        .unwrap();
    let listed = deployments.schedules(again.id).list().await.unwrap();
    assert!(listed.iter().any(|s| s.id == added.id && !s.active));
    deployments.schedules(again.id).delete(added.id).await.unwrap();
    assert_eq!(deployments.schedules(again.id).list().await.unwrap().len(), 1);
    deployments.pause(again.id).await.unwrap();
    assert!(deployments.get(again.id).await.unwrap().paused);
    deployments.resume(again.id).await.unwrap();
    assert!(!deployments.get(again.id).await.unwrap().paused);
    // A bad time zone is the server's to refuse, typed.
    let err = deployments
        .apply(
            &flow
                .deployment("bad-zone")
                .schedule(Schedule::cron("0 9 * * *").timezone("Mars/Base")),
        )
        .await
        .unwrap_err();
    assert!(err.is_validation(), "{err}");
}

#[tokio::test]
async fn serving_without_a_handler_for_a_deployments_flow_is_refused_before_anything_is_sent() {
    let client = Client::new("http://127.0.0.1:9/api").unwrap();
    let flow = RustFlow::without_parameters("a", |_ctx: RunContext| async { Ok::<_, BoxError>(()) });
    let err = client
        .serve([&flow])
        .deployment(DeploymentSpec::new("b", "x"))
        .start()
        .await
        .unwrap_err();
    assert!(err.is_client_side() && err.to_string().contains("\"b\""), "{err}");
    let err = client.serve([&flow]).start().await.unwrap_err();
    assert!(err.is_client_side(), "{err}");
    let twice = client
        .serve([&flow, &flow])
        .deployment(flow.deployment("x"))
        .start()
        .await
        .unwrap_err();
    assert!(matches!(twice, Error::InvalidInput { .. }), "{twice}");
}

#[tokio::test]
async fn a_handed_over_run_is_executed_by_the_example_and_exits_zero() {
    let server = own_server().start().await.unwrap();
    let client = server.client().unwrap();
    let deployment = client
        .deployments()
        .apply(&DeploymentSpec::new("rust-serve-example", "handed-over"))
        .await
        .unwrap();
    let run = client
        .deployments()
        .run(deployment.id)
        .parameters(&json!({ "rows": 2 }))
        .await
        .unwrap();
    let output = tokio::process::Command::new(example("serve"))
        .env("PREFECT_API_URL", server.api_url())
        .env("PREFECT__FLOW_RUN_ID", run.id.to_string())
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ran = client.flow_runs().get(run.id).await.unwrap();
    assert_eq!(ran.state_type, Some(StateType::Completed));
    assert_eq!(task_runs_of(&client, run.id).await.len(), 2);
    // A run of another flow is not this program's: a non-zero exit saying so.
    let other = client.flows().create("some-other-flow").await.unwrap();
    let other_deployment = client.deployments().create(other.id, "x").await.unwrap();
    let foreign = client.deployments().run(other_deployment.id).await.unwrap();
    let output = tokio::process::Command::new(example("serve"))
        .env("PREFECT_API_URL", server.api_url())
        .env("PREFECT__FLOW_RUN_ID", foreign.id.to_string())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("some-other-flow"));
    let _: HashSet<Uuid> = HashSet::new();
}

#[tokio::test]
async fn a_run_retried_in_process_and_rescheduled_at_shutdown_is_taken_by_the_next_process() {
    let client = client().await;
    let name = unique("rust-retried-rescheduled");
    let (first, attempts) = failing_once_then_sleeping(&name, Duration::from_secs(120));
    let first = first.retries(1, Duration::from_secs(0));
    let serving = client
        .serve([&first])
        .deployment(first.deployment("rescheduled"))
        .grace_period(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    let deployment = serving.deployments()[0].id;
    let run = client.deployments().run(deployment).await.unwrap();
    // The second attempt runs (after the server's in-process retry); then the process stops.
    let started = tokio::time::Instant::now();
    while attempts.load(std::sync::atomic::Ordering::SeqCst) < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the retry did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    serving.shutdown();
    serving.wait().await.unwrap();
    let left = client.flow_runs().get(run.id).await.unwrap();
    assert_eq!(left.state_type, Some(StateType::Scheduled), "{:?}", left.state);
    // Another process takes it: the in-process retry of the first is not its mark any more.
    let second = trivial(&name);
    let serving = client
        .serve([&second])
        .deployment(second.deployment("rescheduled"))
        .poll_interval(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    completes(&client, run.id, Duration::from_secs(60)).await;
    serving.shutdown();
    serving.wait().await.unwrap();
}

#[tokio::test]
async fn a_worker_finds_its_runs_behind_many_due_runs_of_other_flows() {
    let client = client().await;
    let pool = unique("rust-mixed-pool");
    let mine = trivial(&unique("rust-mine"));
    let other = trivial(&unique("rust-other"));
    let working = client
        .worker(&pool, [&mine])
        .create_pool(true)
        .limit(2)
        .poll_interval(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    // Eight due runs of a flow nobody here runs, first in the pool's order...
    let others = client
        .deployments()
        .apply(&other.deployment("elsewhere").work_pool(&pool))
        .await
        .unwrap();
    for _ in 0..8 {
        client.deployments().run(others.id).await.unwrap();
    }
    // ...and one of this worker's, due in 15 s (past the wake-up on its creation's event, so
    // only the polls can find it).
    let own = client
        .deployments()
        .apply(&mine.deployment("here").work_pool(&pool))
        .await
        .unwrap();
    let run = client
        .deployments()
        .run(own.id)
        .scheduled_start(chrono::Utc::now() + chrono::Duration::seconds(15))
        .await
        .unwrap();
    completes(&client, run.id, Duration::from_secs(60)).await;
    working.shutdown();
    working.wait().await.unwrap();
}

#[tokio::test]
async fn the_worker_example_creates_its_pool_shows_online_runs_python_created_runs_and_exits_zero_on_sigterm()
{
    let client = client().await;
    let pool = unique("rust-example-pool");
    let (mut worker, line) = Process::start(
        &example("worker"),
        &[
            ("PREFECT_API_URL", client.api_url().to_string()),
            ("PREFECT_WORK_POOL", pool.clone()),
        ],
        "working on pool",
        Duration::from_secs(120),
    )
    .await;
    assert!(line.contains(&pool), "{line}");
    // The pool was created (a Rust worker's type) and the worker beats in it.
    let created = client.work_pools().get_by_name(&pool).await.unwrap();
    assert_eq!(created.type_, prefect_client::serve::WORKER_TYPE);
    let workers = client
        .raw()
        .read_workers(&pool, &Default::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(workers.len(), 1, "{workers:?}");
    assert_eq!(
        workers[0].status.as_ref().map(|s| s.to_string()),
        Some("ONLINE".into())
    );
    // A deployment of the example's flow in the pool, made by someone else.
    let name = unique("via-rust-worker");
    client
        .deployments()
        .apply(&DeploymentSpec::new("rust-serve-example", &name).work_pool(&pool))
        .await
        .unwrap();
    let runs = python_runs(
        client.api_url(),
        &format!("rust-serve-example/{name}"),
        r#"{"rows": 2}"#,
        3,
    )
    .await;
    let ended = wait_final(&client, &runs, Duration::from_secs(120)).await;
    for id in &runs {
        assert_eq!(
            ended[id].state_type,
            Some(StateType::Completed),
            "{:?}",
            ended[id].state
        );
        assert_eq!(task_runs_of(&client, *id).await.len(), 2);
    }
    worker.terminate();
    assert_eq!(
        worker.exit_code(Duration::from_secs(60)).await,
        Some(0),
        "{}",
        worker.output()
    );
}
