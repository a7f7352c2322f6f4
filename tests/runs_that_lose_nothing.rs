//! Flow and task runs that lose nothing, against a real server on a multi-threaded runtime:
//! a flow run whose future is dropped ends (its body and heartbeats stopped), and every line of
//! a task run reaches it wherever the task was spawned. This binary installs the log layer as
//! the global subscriber (spawned tasks run on other threads), so it holds these tests only.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::TryStreamExt;
use prefect_client::runs::{LogShipper, PrefectLogLayer};
use prefect_client::types::StateType;
use tokio::sync::OnceCell;
use tracing_subscriber::prelude::*;

use common::serving::{state_message, task_runs_of};
use common::{client, collect_all, heartbeats_of_run, poll_until, unique, wait_until};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

static SHIPPER: OnceCell<Arc<LogShipper>> = OnceCell::const_new();

/// The log layer, installed once for the whole binary as the global subscriber.
async fn shipper() -> Arc<LogShipper> {
    SHIPPER
        .get_or_init(|| async {
            let layer = PrefectLogLayer::new(&client().await);
            let shipper = layer.handle();
            tracing_subscriber::registry().with(layer).init();
            shipper
        })
        .await
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dropped_run_future_stops_its_body_and_heartbeats_and_ends_the_run_cancelled() {
    let client = client().await;
    let finished = Arc::new(AtomicBool::new(false));
    let (id_sender, id) = tokio::sync::oneshot::channel();
    let run = client
        .new_flow_run(&unique("rust-dropped"))
        .heartbeat(Duration::from_secs(1))
        .run({
            let finished = finished.clone();
            move |ctx| async move {
                let _ = id_sender.send(ctx.flow_run_id());
                let task = ctx.task("long").run(|| async {
                    tokio::time::sleep(Duration::from_secs(8)).await;
                    Ok::<_, BoxError>(())
                });
                task.await?;
                finished.store(true, Ordering::SeqCst);
                Ok::<_, BoxError>(())
            }
        });
    // What the issue measured: a timeout around the run fires while the body sleeps (here 2 s
    // after the body started, however long the server took to start the run).
    let id = tokio::select! {
        ended = run => panic!("the run ended before its future was dropped: {:?}", ended.map(|r| r.flow_run_id)),
        id = async {
            let id = id.await.expect("the body starts");
            tokio::time::sleep(Duration::from_secs(2)).await;
            id
        } => id,
    };
    let dropped_at = chrono::Utc::now();
    let ended = client
        .flow_runs()
        .wait_for_completion(id, Duration::from_secs(20))
        .await
        .expect("the run ends soon after its future is dropped");
    assert_eq!(ended.state_type, Some(StateType::Cancelled));
    let state = client.flow_runs().states(id).await.unwrap();
    let message = state.last().and_then(|s| s.message.clone()).unwrap_or_default();
    assert!(message.contains("dropped"), "{message}");
    // Its task run is not left running.
    let tasks = task_runs_of(&client, id).await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].state_type, Some(StateType::Cancelled));
    // The body was stopped: 10 s after the drop it has not run on to its end.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(!finished.load(Ordering::SeqCst), "the body ran on after the drop");
    // And the heartbeats stopped: none stored from a second after the drop.
    let since = dropped_at + chrono::Duration::seconds(2);
    let beats = collect_all(client.events().stream(heartbeats_of_run(id, since, None))).await;
    assert!(beats.is_empty(), "{} heartbeats after the drop", beats.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_line_of_a_task_run_started_in_a_spawned_task_reaches_it() {
    let client = client().await;
    let shipper = shipper().await;
    const TASKS: usize = 4;
    const LINES: usize = 25;
    let report = client
        .new_flow_run(&unique("rust-spawned-logs"))
        .run(|ctx| async move {
            let spawned: Vec<_> = (0..TASKS)
                .map(|t| {
                    let ctx = ctx.clone();
                    // No span of the flow goes with a plain spawn: the task run's own span
                    // must name the flow run.
                    tokio::spawn(async move {
                        ctx.task("spawned")
                            .run(|| async move {
                                for n in 0..LINES {
                                    tracing::info!("task {t} line {n}");
                                }
                                Ok::<_, BoxError>(())
                            })
                            .await
                    })
                })
                .collect();
            for task in spawned {
                task.await??;
            }
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap();
    assert!(report.outcome.is_completed());
    tokio::time::timeout(Duration::from_secs(60), shipper.flush())
        .await
        .unwrap();
    let logs: Vec<_> = client
        .flow_runs()
        .logs(report.flow_run_id)
        .try_collect()
        .await
        .unwrap();
    let task_lines = logs.iter().filter(|l| l.task_run_id.is_some()).count();
    assert_eq!(task_lines, TASKS * LINES, "every line reached its task run");
    assert_eq!(shipper.unplaced(), 0);
    assert_eq!(shipper.dropped(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_future_dropped_while_running_is_proposed_ends_the_run_cancelled() {
    let (direct, proxy, client) = common::proxy::proxied_clients().await;
    let flow = unique("rust-dropped-starting");
    // The run's creation passes; the answer to its RUNNING proposal is held (the server acts).
    proxy.inject(
        "POST",
        "/flow_runs/",
        common::proxy::Fault::StallAfter(Duration::ZERO),
        1,
    );
    proxy.inject(
        "POST",
        "/flow_runs/",
        common::proxy::Fault::StallAfter(Duration::from_secs(300)),
        1,
    );
    let ran = Arc::new(AtomicBool::new(false));
    let run = client.new_flow_run(&flow).run({
        let ran = ran.clone();
        move |_ctx| async move {
            ran.store(true, Ordering::SeqCst);
            Ok::<_, BoxError>(())
        }
    });
    // Dropped once the RUNNING proposal is held (however long the server took to get there).
    tokio::select! {
        ended = run => panic!("the run ended while its start was held: {:?}", ended.map(|r| r.flow_run_id)),
        () = async {
            let proposed = || proxy.pending_faults() == 0;
            wait_until(Duration::from_secs(60), Duration::from_millis(50), "the run was never proposed RUNNING", proposed).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        } => {}
    }
    let the_run = || async {
        let runs = collect_all(direct.flow_runs().stream(common::runs_of_flow(&flow))).await;
        assert_eq!(runs.len(), 1, "one run of {flow}");
        runs.into_iter().next().unwrap()
    };
    let cancelled =
        |run: &prefect_client::types::FlowRunResponse| run.state_type == Some(StateType::Cancelled);
    let run = poll_until(
        Duration::from_secs(20),
        Duration::from_millis(250),
        the_run,
        cancelled,
    )
    .await;
    assert_eq!(
        run.state_type,
        Some(StateType::Cancelled),
        "a run whose future was dropped while it started is not left {:?}",
        run.state_type
    );
    let message = state_message(&run);
    assert!(message.contains("dropped"), "{message}");
    assert!(!ran.load(Ordering::SeqCst), "the body never started");
}
