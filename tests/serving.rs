//! Serving (`client.serve` and the `serve` example) against real servers: runs created by
//! Prefect's Python client, its scheduler and its UI's API, cancelled from Python, the serving
//! process SIGTERMed and SIGKILLed, the server stopped under it, deployment concurrency limits,
//! retries, timeouts and bad parameters.
//!
//! The `serve` example always serves `rust-serve-example/example`: each test using it has a
//! server of its own.

mod common;

use std::time::Duration;

use prefect_client::resources::deployments::{CollisionStrategy, DeploymentSpec, Schedule};
use prefect_client::runs::RunContext;
use prefect_client::serve::{RustFlow, ServeSettings};
use prefect_client::types::StateType;
use prefect_client::{Client, Error};
use serde_json::json;

use common::serving::*;
use common::{client, collect_all, create_zombie_automation, runs_of_deployment, unique, wait_until};

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
    let runs = example_runs(server.api_url(), r#"{"rows": 2, "sleep_s": 0.05}"#, 50).await;
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
    let short = start_example_run(&client, r#"{"rows": 3, "sleep_s": 1}"#).await;
    serving.exits_zero_on_sigterm(Duration::from_secs(60)).await;
    let run = client.flow_runs().get(short).await.unwrap();
    assert_eq!(
        run.state_type,
        Some(StateType::Completed),
        "the grace period let it finish"
    );
    // A run it could not finish within the grace period: scheduled again, not left running.
    let (mut serving, _) = serve_example(server.api_url(), &[]).await;
    let long = start_example_run(&client, r#"{"rows": 1, "sleep_s": 120}"#).await;
    serving.exits_zero_on_sigterm(Duration::from_secs(90)).await;
    let run = client.flow_runs().get(long).await.unwrap();
    assert_eq!(run.state_type, Some(StateType::Scheduled), "{:?}", run.state_name);
    assert_eq!(run.state_name.as_deref(), Some("AwaitingRetry"));
    for task in task_runs_of(&client, long).await {
        assert!(
            !matches!(task.state_type, Some(StateType::Running | StateType::Pending)),
            "a task run left {:?}",
            task.state_type
        );
    }
    // The next process picks it up (it sleeps again: a new attempt).
    let (mut serving, _) = serve_example(server.api_url(), &[]).await;
    wait_running(&client, long, Duration::from_secs(30)).await;
    // A second SIGTERM ends the grace period (30 s) at once: the run is scheduled again now.
    serving.terminate();
    tokio::time::sleep(Duration::from_secs(1)).await;
    serving.terminate();
    assert_eq!(serving.exit_code(Duration::from_secs(25)).await, Some(0));
    let run = client.flow_runs().get(long).await.unwrap();
    assert_eq!(run.state_type, Some(StateType::Scheduled), "{:?}", run.state_name);
    assert_eq!(run.run_count, 2, "{:?}", history(&client, long).await);
}

#[tokio::test]
async fn a_sigkilled_process_s_run_is_crashed_by_the_zombie_automation_and_a_new_process_serves_on() {
    let server = own_server().start().await.unwrap();
    let client = server.client().unwrap();
    create_zombie_automation(&client).await;
    let beat = [("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "1".to_string())];
    let (serving, _) = serve_example(server.api_url(), &beat).await;
    let run = start_example_run(&client, r#"{"rows": 1, "sleep_s": 300}"#).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    serving.kill();
    let crashed = client
        .flow_runs()
        .wait_for_completion(run, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(crashed.state_type, Some(StateType::Crashed));
    let (_next, _) = serve_example(server.api_url(), &beat).await;
    let next = example_runs(server.api_url(), r#"{"rows": 1}"#, 1).await;
    let ended = wait_final(&client, &next, Duration::from_secs(60)).await;
    assert_eq!(ended[&next[0]].state_type, Some(StateType::Completed));
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
    let runs = example_runs(server.api_url(), r#"{"rows": 1}"#, 3).await;
    let ended = wait_final(&client, &runs, Duration::from_secs(90)).await;
    assert!(ended.values().all(|r| r.state_type == Some(StateType::Completed)));
    serving.exits_zero_on_sigterm(Duration::from_secs(60)).await;
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
    let limited = client.deployments().apply(&spec).await.unwrap().object;
    assert_eq!(limited.id, deployment);
    assert!(limited.global_concurrency_limit.is_some());
    let runs = example_runs(server.api_url(), r#"{"rows": 1, "sleep_s": 1}"#, 5).await;
    let running = |state: &StateType| *state == StateType::Running;
    let (peak, _) = peak_until_completed(&client, &runs, running, Duration::from_secs(120)).await;
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
    start_example_run(&client, r#"{"rows": 1, "sleep_s": 300}"#).await;
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
    let flow = trivial(&name);
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
        let runs = collect_all(client.flow_runs().stream(runs_of_deployment(deployment))).await;
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
    shut_down(serving).await;
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
    let (serving, deployment) = serve(&client, &flow, flow.deployment("cancel")).await;
    let run = create_run_with(&client, deployment, json!({ "sleep_s": 300 })).await;
    wait_running(&client, run, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let asked = tokio::time::Instant::now();
    python_cancel(client.api_url(), run).await;
    let cancelled = client
        .flow_runs()
        .wait_for_completion(run, Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!(cancelled.state_type, Some(StateType::Cancelled));
    eprintln!("cancelled {:?} after it was asked", asked.elapsed());
    for task in task_runs_of(&client, run).await {
        assert_ne!(
            task.state_type,
            Some(StateType::Running),
            "a task run left running"
        );
    }
    let next = create_run_with(&client, deployment, json!({ "sleep_s": 0 })).await;
    completes(&client, next, Duration::from_secs(30)).await;
    shut_down(serving).await;
}

#[tokio::test]
async fn bad_parameters_are_refused_at_creation_when_enforced_and_fail_the_run_naming_the_field_otherwise() {
    let client = client().await;
    let name = unique("rust-params");
    let flow = returning_rows(&name);
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
        .create_run(enforced)
        .parameters(&json!({ "rows": "many" }))
        .await
        .unwrap_err();
    assert!(
        matches!(refused.status().map(|s| s.as_u16()), Some(409 | 422)),
        "the server refuses it: {refused}"
    );
    let run = create_run_with(&client, lenient, json!({ "rows": "many" })).await;
    let failed = wait_final(&client, &[run], Duration::from_secs(30)).await;
    let failed = &failed[&run];
    assert_eq!(failed.state_type, Some(StateType::Failed));
    let message = state_message(failed);
    assert!(message.contains("`rows`"), "{message}");
    // The process goes on.
    let good = create_run_with(&client, lenient, json!({ "rows": 2 })).await;
    completes(&client, good, Duration::from_secs(30)).await;
    shut_down(serving).await;
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
    let (serving, run) = serve_and_run(&client, &flow, flow.deployment("retried")).await;
    let ended = wait_final(&client, &[run], Duration::from_secs(60)).await;
    let ended = &ended[&run];
    assert_eq!(ended.state_type, Some(StateType::Failed));
    assert_eq!(ended.state_name.as_deref(), Some("TimedOut"));
    assert_eq!(ended.run_count, 2, "one retry, in process");
    assert_eq!(ended.flow_version.as_deref(), Some("1.2.3"));
    assert_eq!(
        ended.infrastructure_pid.as_deref(),
        Some(std::process::id().to_string().as_str())
    );
    let names: Vec<_> = history(&client, run)
        .await
        .into_iter()
        .filter_map(|(_, n)| n)
        .collect();
    assert!(names.iter().any(|n| n == "AwaitingRetry"), "{names:?}");
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 2);
    shut_down(serving).await;
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
async fn a_run_retried_in_process_and_rescheduled_at_shutdown_is_taken_by_the_next_process() {
    let client = client().await;
    let name = unique("rust-retried-rescheduled");
    let (first, attempts) = failing_once_then_sleeping(&name, Duration::from_secs(120));
    let first = first.retries(1, Duration::from_secs(0));
    let settings = ServeSettings::default().grace_period(Duration::from_secs(1));
    let (serving, deployment) = serve_with(&client, &first, first.deployment("rescheduled"), settings).await;
    let run = client.deployments().create_run(deployment).await.unwrap();
    // The second attempt runs (after the server's in-process retry); then the process stops.
    let retried = || attempts.load(std::sync::atomic::Ordering::SeqCst) >= 2;
    wait_until(
        Duration::from_secs(60),
        Duration::from_millis(100),
        "the retry did not start",
        retried,
    )
    .await;
    shut_down(serving).await;
    let left = client.flow_runs().get(run.id).await.unwrap();
    assert_eq!(left.state_type, Some(StateType::Scheduled), "{:?}", left.state);
    // Another process takes it: the in-process retry of the first is not its mark any more.
    let second = trivial(&name);
    let settings = ServeSettings::default().poll_interval(Duration::from_secs(1));
    let (serving, _) = serve_with(&client, &second, second.deployment("rescheduled"), settings).await;
    completes(&client, run.id, Duration::from_secs(60)).await;
    shut_down(serving).await;
}

#[tokio::test]
async fn each_served_run_s_end_is_seen_on_the_ended_runs_stream_and_the_stream_ends_with_serving() {
    use futures_util::StreamExt;
    use prefect_client::runs::Outcome;
    use prefect_client::serve::RunEnd;

    let client = client().await;
    let fine = trivial(&unique("rust-ends-fine"));
    let failing = RustFlow::without_parameters(&unique("rust-ends-failing"), |_ctx: RunContext| async move {
        Err::<(), BoxError>("the table is missing".into())
    });
    let serving = client
        .serve([&fine, &failing])
        .deployment(fine.deployment("ends"))
        .deployment(failing.deployment("ends"))
        .start()
        .await
        .unwrap();
    let mut ended = serving.ended_runs();
    let mut expected = std::collections::HashMap::new();
    for (deployment, flow) in serving.deployments().iter().zip([&fine, &failing]) {
        let run = client.deployments().create_run(deployment.id).await.unwrap();
        expected.insert(run.id, flow.name().to_string());
    }
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let run = tokio::time::timeout(Duration::from_secs(60), ended.next())
            .await
            .expect("each run's end within 60 s")
            .expect("the stream lasts while serving does");
        assert_eq!(expected.get(&run.flow_run_id), Some(&run.flow_name), "{run:?}");
        seen.push(run);
    }
    for run in &seen {
        match &run.end {
            RunEnd::Ended(Outcome::Completed(())) => assert_eq!(run.flow_name, fine.name()),
            RunEnd::Ended(Outcome::Failed(message)) => {
                assert_eq!(run.flow_name, failing.name());
                assert!(message.contains("the table is missing"), "{message}");
            }
            other => panic!("an end the runs did not have: {other:?}"),
        }
    }
    serving.shutdown();
    let after = tokio::time::timeout(Duration::from_secs(60), ended.next()).await;
    assert!(
        matches!(after, Ok(None)),
        "the stream ends with serving: {after:?}"
    );
    serving.wait().await.unwrap();
}
