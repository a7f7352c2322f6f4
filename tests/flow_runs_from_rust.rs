//! Rust work as Prefect runs, against a real server: what Prefect's own API reports for flow
//! runs, task runs and logs made by `Client::flow`, failures and panics, tag limits enforced by
//! the server, cancellation from outside, and the log layer under volume and with the server
//! gone.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use futures_util::TryStreamExt;
use prefect_client::runs::{Outcome, PrefectLogLayer, TaskError};
use prefect_client::types::{Log, ReadLogsBody, ReadTaskRunsBody, State, StateType, TaskRun};
use prefect_client::{Client, Error};
use serde_json::json;
use tracing_subscriber::prelude::*;
use uuid::Uuid;

use common::{client, unique};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Requires a run's outcome to match `pattern`, showing the outcome if it does not.
macro_rules! assert_outcome {
    ($outcome:expr, $pattern:pat) => {
        assert!(matches!($outcome, $pattern), "{:?}", $outcome)
    };
}

/// The state types of a flow run's history, oldest first.
async fn flow_history(client: &Client, run: Uuid) -> Vec<StateType> {
    oldest_first(
        client
            .raw()
            .read_flow_run_states(&run)
            .await
            .unwrap()
            .into_inner(),
    )
}

/// The state types of a task run's history, oldest first.
async fn task_history(client: &Client, task: Uuid) -> Vec<StateType> {
    oldest_first(
        client
            .raw()
            .read_task_run_states(&task)
            .await
            .unwrap()
            .into_inner(),
    )
}

/// The types of `states` in the order they were entered.
fn oldest_first(mut states: Vec<State>) -> Vec<StateType> {
    states.sort_by_key(|s| s.timestamp);
    states.into_iter().map(|s| s.type_).collect()
}

async fn task_runs(client: &Client, run: Uuid) -> Vec<TaskRun> {
    let body: ReadTaskRunsBody =
        serde_json::from_value(json!({ "task_runs": { "flow_run_id": { "any_": [run] } } })).unwrap();
    client.raw().read_task_runs(&body).await.unwrap().into_inner()
}

async fn logs_of(client: &Client, run: Uuid) -> Vec<Log> {
    client.flow_runs().logs(run).try_collect().await.unwrap()
}

#[tokio::test]
async fn a_flow_with_three_task_runs_shows_in_prefects_api_with_its_logs() {
    let client = client().await;
    let layer = PrefectLogLayer::new(&client);
    let shipper = layer.handle();
    let _default = common::set_test_subscriber(tracing_subscriber::registry().with(layer));

    let report = client
        .new_flow_run(&unique("rust-pipeline"))
        .parameters(&json!({ "day": "2026-11-29" }))
        .tags(["rust", "test"])
        .run(|ctx| async move {
            tracing::info!("flow starts");
            let rows = ctx
                .task("extract")
                .run(|| async {
                    tracing::info!("extracting");
                    Ok::<_, BoxError>(3)
                })
                .await?;
            let (a, b) = tokio::join!(
                ctx.task("transform").run(|| async move {
                    tracing::info!("transform a");
                    Ok::<_, BoxError>(rows * 2)
                }),
                ctx.task("transform").run(|| async move {
                    tracing::info!("transform b");
                    Ok::<_, BoxError>(rows * 3)
                }),
            );
            tracing::info!(total = a? + b?, "flow ends");
            Ok::<_, BoxError>(rows)
        })
        .await
        .unwrap();
    assert_outcome!(report.outcome, Outcome::Completed(3));
    assert!(
        report
            .url
            .ends_with(&format!("/runs/flow-run/{}", report.flow_run_id)),
        "{}",
        report.url
    );

    let run = client.flow_runs().get(report.flow_run_id).await.unwrap();
    assert_eq!(run.state_type, Some(StateType::Completed));
    assert_eq!(run.tags, ["rust", "test"]);
    assert_eq!(run.parameters["day"], "2026-11-29");
    assert_eq!(
        flow_history(&client, report.flow_run_id).await,
        [StateType::Pending, StateType::Running, StateType::Completed]
    );
    let tasks = task_runs(&client, report.flow_run_id).await;
    assert_eq!(tasks.len(), 3, "three task runs under the flow run");
    for task in &tasks {
        assert_eq!(task.state_type, Some(StateType::Completed), "{:?}", task.name);
        // PENDING first, as Prefect's engine records it.
        assert_eq!(
            task_history(&client, task.id).await,
            [StateType::Pending, StateType::Running, StateType::Completed]
        );
    }
    let by_name: HashMap<Uuid, String> = tasks
        .iter()
        .map(|t| (t.id, t.name.clone().unwrap_or_default()))
        .collect();

    // The run flushed its lines within its budget; on a server slowed by the other tests
    // (the 100,000-line one shares it) a batch may still be under way: wait for it, then read.
    tokio::time::timeout(Duration::from_secs(60), shipper.flush())
        .await
        .expect("the shipper flushes");
    assert_eq!(shipper.dropped(), 0, "no line dropped");
    let logs = logs_of(&client, report.flow_run_id).await;
    let flow_lines: Vec<&str> = logs
        .iter()
        .filter(|l| l.task_run_id.is_none())
        .map(|l| l.message.as_str())
        .collect();
    assert_eq!(
        flow_lines,
        ["flow starts", "flow ends total=15"],
        "all lines of the run: {:?}; shipped {}, unplaced {}",
        logs.iter()
            .map(|l| (&l.message, l.task_run_id))
            .collect::<Vec<_>>(),
        shipper.shipped(),
        shipper.unplaced()
    );
    let extract = logs
        .iter()
        .find(|l| l.message == "extracting")
        .expect("the task's line");
    assert!(by_name[&extract.task_run_id.unwrap()].starts_with("extract"));
    for line in ["transform a", "transform b"] {
        let log = logs
            .iter()
            .find(|l| l.message == line)
            .expect("each concurrent task's line");
        assert!(by_name[&log.task_run_id.unwrap()].starts_with("transform"));
    }
    assert_eq!(shipper.dropped(), 0);
}

#[tokio::test]
async fn a_failing_task_fails_its_task_run_and_the_flow_run() {
    let client = client().await;
    let report = client
        .new_flow_run(&unique("rust-failing"))
        .run(|ctx| async move {
            ctx.task("load")
                .run(|| async { Err::<(), _>(std::io::Error::other("the warehouse refused the rows")) })
                .await?;
            Ok::<_, TaskError<std::io::Error>>(())
        })
        .await
        .unwrap();
    match &report.outcome {
        Outcome::Failed(TaskError::Failed(e)) => assert_eq!(e.to_string(), "the warehouse refused the rows"),
        other => panic!("{other:?}"),
    }
    let run = client.flow_runs().get(report.flow_run_id).await.unwrap();
    assert_eq!(run.state_type, Some(StateType::Failed));
    assert_eq!(
        run.state.unwrap().message.as_deref(),
        Some("the warehouse refused the rows")
    );
    let tasks = task_runs(&client, report.flow_run_id).await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].state_type, Some(StateType::Failed));
}

#[tokio::test]
async fn a_panic_crashes_the_run_and_ends_its_running_task() {
    let client = client().await;
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        client.new_flow_run(&unique("rust-panic")).run(|ctx| async move {
            ctx.task("boom")
                .run(|| async {
                    panic!("index out of bounds in the parser");
                    #[allow(unreachable_code)]
                    Ok::<(), BoxError>(())
                })
                .await?;
            Ok::<_, TaskError<BoxError>>(())
        }),
    )
    .await
    .expect("a panic does not hang the run")
    .unwrap();
    match &report.outcome {
        Outcome::Panicked(message) => assert!(message.contains("index out of bounds"), "{message}"),
        other => panic!("{other:?}"),
    }
    let run = client.flow_runs().get(report.flow_run_id).await.unwrap();
    assert_eq!(run.state_type, Some(StateType::Crashed));
    assert!(
        run.state
            .unwrap()
            .message
            .unwrap()
            .contains("index out of bounds")
    );
    let tasks = task_runs(&client, report.flow_run_id).await;
    assert_eq!(
        tasks[0].state_type,
        Some(StateType::Crashed),
        "the task run does not stay running"
    );
}

#[tokio::test]
async fn a_tag_limit_of_one_lets_one_task_run_at_a_time() {
    let client = client().await;
    let tag = unique("rust-tag");
    client.concurrency_limits().create(&tag, 1).await.unwrap();
    let watcher = {
        let (client, tag) = (client.clone(), tag.clone());
        tokio::spawn(async move {
            let mut peak = 0;
            loop {
                let limit = client.concurrency_limits().get_by_tag(&tag).await.unwrap();
                peak = peak.max(limit.active_slots.len());
                tokio::time::sleep(Duration::from_millis(100)).await;
                if peak > 1 {
                    return peak;
                }
            }
        })
    };
    let report = client
        .new_flow_run(&unique("rust-limited"))
        .run(|ctx| {
            let tag = tag.clone();
            async move {
                let runs = (0..4).map(|n| {
                    let ctx = ctx.clone();
                    let tag = tag.clone();
                    async move {
                        ctx.task("limited")
                            .tags([tag])
                            .run(|| async move {
                                tokio::time::sleep(Duration::from_millis(400)).await;
                                Ok::<_, BoxError>(n)
                            })
                            .await
                    }
                });
                let done = futures_util::future::join_all(runs).await;
                for result in &done {
                    if let Err(e) = result {
                        eprintln!("a limited task run failed: {e}");
                    }
                }
                Ok::<_, BoxError>(done.into_iter().filter(Result::is_ok).count())
            }
        })
        .await
        .unwrap();
    assert_outcome!(report.outcome, Outcome::Completed(4));
    assert!(
        !watcher.is_finished(),
        "active_slots went above 1: {:?}",
        watcher.await
    );
    watcher.abort();
    let limit = client.concurrency_limits().get_by_tag(&tag).await.unwrap();
    assert!(limit.active_slots.is_empty(), "{:?}", limit.active_slots);
    // A tagged task run waits pending for its slots.
    let tasks = task_runs(&client, report.flow_run_id).await;
    assert_eq!(tasks.len(), 4);
    for task in &tasks {
        assert_eq!(
            task_history(&client, task.id).await,
            [StateType::Pending, StateType::Running, StateType::Completed]
        );
    }
}

#[tokio::test]
async fn a_run_cancelled_from_outside_stops_its_future_and_ends_cancelled() {
    let client = client().await;
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let canceller = {
        let client = client.clone();
        tokio::spawn(async move {
            let id: Uuid = started_rx.await.unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
            client.flow_runs().cancel(id).await.unwrap();
        })
    };
    let (stopped_tx, mut stopped_rx) = tokio::sync::mpsc::channel::<()>(1);
    let started = std::time::Instant::now();
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        client.new_flow_run(&unique("rust-cancel")).run(|ctx| async move {
            let _stopped = stopped_tx;
            let id = ctx.flow_run_id();
            ctx.task("forever")
                .run_once(|| async move {
                    // Running: now cancel it from outside.
                    started_tx.send(id).unwrap();
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    Ok::<_, BoxError>(())
                })
                .await?;
            Ok::<_, TaskError<BoxError>>(())
        }),
    )
    .await
    .expect("the cancellation stops the run")
    .unwrap();
    canceller.await.unwrap();
    assert_outcome!(report.outcome, Outcome::Cancelled);
    // The future was dropped: its sender is gone.
    assert!(stopped_rx.recv().await.is_none());
    eprintln!("cancelled after {:?}", started.elapsed());
    let run = client.flow_runs().get(report.flow_run_id).await.unwrap();
    assert_eq!(run.state_type, Some(StateType::Cancelled));
    let tasks = task_runs(&client, report.flow_run_id).await;
    assert_eq!(tasks[0].state_type, Some(StateType::Cancelled));
}

#[tokio::test]
async fn bad_names_and_parameters_are_typed_errors_before_anything_is_sent() {
    let client = client().await;
    let sent = client.requests_sent();
    let error = client
        .new_flow_run("")
        .run(|_| async { Ok::<_, BoxError>(()) })
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::InvalidInput {
                what: "flow name",
                ..
            }
        ),
        "{error}"
    );
    let error = client
        .new_flow_run("fine")
        .parameters(&[1, 2])
        .run(|_| async { Ok::<_, BoxError>(()) })
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidInput { .. }), "{error}");
    assert_eq!(client.requests_sent(), sent);
}

#[tokio::test]
async fn the_log_layer_ships_100_000_lines_from_8_tasks_complete_and_in_order() {
    // A server of its own: 100,000 lines keep SQLite busy.
    let server = prefect_testkit::LocalServer::start().await.unwrap();
    let client = server.client().unwrap();
    let layer = PrefectLogLayer::new(&client);
    let shipper = layer.handle();
    let _default = common::set_test_subscriber(tracing_subscriber::registry().with(layer));
    const TASKS: usize = 8;
    const LINES: usize = 12_500;
    let report = client
        .new_flow_run(&unique("rust-logs"))
        .run(|ctx| async move {
            let tasks = (0..TASKS).map(|t| {
                let ctx = ctx.clone();
                async move {
                    ctx.task("chatty")
                        .run(|| async move {
                            for n in 0..LINES {
                                tracing::info!("task {t} line {n}");
                                if n % 1000 == 0 {
                                    tokio::task::yield_now().await;
                                }
                            }
                            Ok::<_, BoxError>(())
                        })
                        .await
                }
            });
            futures_util::future::join_all(tasks).await;
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap();
    assert!(report.outcome.is_completed());
    // The run waits a bounded time for its lines; the rest follow.
    tokio::time::timeout(Duration::from_secs(120), shipper.flush())
        .await
        .expect("the shipper drains");
    assert_eq!(shipper.dropped(), 0);
    let body = ReadLogsBody {
        logs: Some(prefect_client::types::LogFilter {
            flow_run_id: Some(prefect_client::types::LogFilterFlowRunId {
                any: Some(vec![report.flow_run_id]),
            }),
            ..Default::default()
        }),
        sort: Some(prefect_client::types::LogSort::TimestampAsc),
        ..Default::default()
    };
    let logs: Vec<Log> = client.logs().stream(body).try_collect().await.unwrap();
    assert_eq!(logs.len(), TASKS * LINES, "every line arrived");
    let mut next = HashMap::<Uuid, usize>::new();
    for log in &logs {
        let task = log.task_run_id.expect("each line belongs to its task run");
        let n: usize = log.message.rsplit(' ').next().unwrap().parse().unwrap();
        let expected = next.entry(task).or_default();
        assert_eq!(n, *expected, "lines of a task run in order");
        *expected += 1;
    }
    assert_eq!(next.len(), TASKS);
}

#[tokio::test]
async fn with_the_server_gone_the_layer_drops_and_counts_without_blocking() {
    let mut server = prefect_testkit::LocalServer::start().await.unwrap();
    let client = Client::builder(server.api_url()).max_retries(0).build().unwrap();
    let layer = PrefectLogLayer::with_queue(&client, 1_000);
    let shipper = layer.handle();
    let _default = common::set_test_subscriber(tracing_subscriber::registry().with(layer));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let run = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .new_flow_run(&unique("rust-logs-gone"))
                .run(|_ctx| async move {
                    tracing::info!("before the server stops");
                    stop_tx.send(()).unwrap();
                    go_rx.await.unwrap();
                    for n in 0..20_000 {
                        tracing::info!("line {n} while the server is gone");
                    }
                    Ok::<_, BoxError>(())
                })
                .await
        })
    };
    stop_rx.await.unwrap();
    server.stop();
    go_tx.send(()).unwrap();
    // The run cannot report its end to a stopped server: its outcome comes back with a typed
    // error beside it, in bounded time (its end is sent again for two minutes, in case the
    // server comes back).
    let report = tokio::time::timeout(Duration::from_secs(200), run)
        .await
        .expect("the run ends in bounded time")
        .unwrap()
        .expect("the body ran: its outcome comes back");
    assert!(report.outcome.is_completed(), "{:?}", report.outcome);
    let error = report
        .unreported
        .expect("the end Prefect did not record is reported");
    assert!(error.is_connect() || error.is_connection_lost(), "{error}");
    assert!(shipper.dropped() >= 19_000, "dropped {}", shipper.dropped());
}

#[tokio::test]
async fn a_killed_process_with_heartbeats_does_not_leave_its_run_running() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let server = prefect_testkit::LocalServer::start().await.unwrap();
    let client = server.client().unwrap();
    common::create_zombie_automation(&client).await;
    let worker = prefect_testkit::worker_binary().unwrap();
    let mut child = tokio::process::Command::new(worker)
        .args(["flow-heartbeat", client.api_url(), &unique("rust-zombie")])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the worker starts its run")
        .unwrap()
        .unwrap();
    let id: Uuid = line
        .strip_prefix("RUNNING ")
        .expect("RUNNING <id>")
        .parse()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        client.flow_runs().get(id).await.unwrap().state_type,
        Some(StateType::Running)
    );
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let killed = std::time::Instant::now();
    let run = client
        .flow_runs()
        .wait_for_completion(id, Duration::from_secs(120))
        .await
        .expect("the server ends the run of the killed process");
    assert_eq!(run.state_type, Some(StateType::Crashed), "{:?}", run.state);
    eprintln!("marked crashed {:?} after the kill", killed.elapsed());
}

#[tokio::test]
async fn a_task_whose_end_cannot_be_reported_keeps_its_value_and_is_ended_completed_by_its_flow() {
    let (direct, proxy, client) = common::proxy::proxied_clients().await;
    let report = client
        .new_flow_run(&unique("rust-unreported"))
        .run(|ctx| {
            let proxy = proxy.clone();
            async move {
                let value = ctx
                    .task("unreported")
                    .run_once(|| async move {
                        // The task's end is the next task-run request: it fails (500, not
                        // repeated: the server may have acted).
                        proxy.inject("POST", "/task_runs/", common::proxy::Fault::Status(500, None), 1);
                        Ok::<_, BoxError>(7)
                    })
                    .await?;
                Ok::<_, BoxError>(value)
            }
        })
        .await;
    let report = report.unwrap();
    assert_outcome!(report.outcome, Outcome::Completed(7));
    assert_eq!(proxy.faults_applied(), 1);
    let tasks = task_runs(&direct, report.flow_run_id).await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        tasks[0].state_type,
        Some(StateType::Completed),
        "reported by the flow at its end, not CANCELLED"
    );
}

#[tokio::test]
async fn a_flow_whose_end_cannot_be_reported_keeps_its_value_and_says_why() {
    let (direct, proxy, client) = common::proxy::proxied_clients().await;
    let report = client
        .new_flow_run(&unique("rust-flow-unreported"))
        .run(|ctx| {
            let proxy = proxy.clone();
            async move {
                // The flow's end is the next state proposal of this run: it fails (500, not
                // repeated: the server may have acted).
                let path = format!("/flow_runs/{}/set_state", ctx.flow_run_id());
                proxy.inject(
                    "POST",
                    Box::leak(path.into_boxed_str()),
                    common::proxy::Fault::Status(500, None),
                    1,
                );
                Ok::<_, BoxError>(11)
            }
        })
        .await
        .expect("the body ran: its outcome comes back even though its end was not recorded");
    assert_outcome!(report.outcome, Outcome::Completed(11));
    assert_eq!(proxy.faults_applied(), 1);
    let unreported = report
        .unreported
        .expect("the refused end is reported to the caller");
    assert_eq!(unreported.status().map(|s| s.as_u16()), Some(500), "{unreported}");
    let run = direct.flow_runs().get(report.flow_run_id).await.unwrap();
    assert_eq!(
        run.state_type,
        Some(StateType::Running),
        "Prefect did not record the end, and the report says so"
    );
}

#[tokio::test]
async fn a_task_runs_lines_are_stored_before_its_end_is_reported() {
    let client = client().await;
    let layer = PrefectLogLayer::new(&client);
    let _default = common::set_test_subscriber(tracing_subscriber::registry().with(layer));
    let reader = client.clone();
    let report = client
        .new_flow_run(&unique("rust-flushed"))
        .run(|ctx| async move {
            ctx.task("noisy")
                .run(|| async {
                    for line in 0..50 {
                        tracing::info!(line, "noisy line");
                    }
                    Ok::<_, BoxError>(())
                })
                .await?;
            // The task's end is reported: its lines are in Prefect already.
            let stored = logs_of(&reader, ctx.flow_run_id())
                .await
                .into_iter()
                .filter(|log| log.message.contains("noisy line"))
                .count();
            Ok::<_, BoxError>(stored)
        })
        .await
        .unwrap();
    match report.outcome {
        Outcome::Completed(stored) => assert_eq!(stored, 50, "lines stored when the task's end was reported"),
        other => panic!("{other:?}"),
    }
}
