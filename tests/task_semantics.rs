//! Task runs with Prefect's semantics, against a real server: retries (one task run, its
//! `run_count`, Prefect's state names), timeouts, cache hits in another process, results read
//! by Prefect's Python client and the other way round, and the inputs the run graph draws.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use prefect_client::Client;
use prefect_client::runs::{LocalStorage, Outcome, RetryDelay, RunContext, TaskError, read_result};
use prefect_client::types::{StateType, TaskRun};
use serde_json::{Value, json};
use uuid::Uuid;

use common::serving::{example, python, python_in, task_runs_of};
use common::{client, server, unique};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn states(client: &Client, task: &TaskRun) -> Vec<(StateType, String)> {
    client
        .task_runs()
        .states(task.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.type_, s.name.unwrap_or_default()))
        .collect()
}

/// A task failing its first `failures` attempts, with `retries`.
async fn flaky_flow(client: &Client, failures: u32, retries: u32) -> (Uuid, bool) {
    let attempts = Arc::new(AtomicU32::new(0));
    let report = client
        .new_flow_run(&unique("rust-retries"))
        .run(move |ctx: RunContext| async move {
            ctx.task("flaky")
                .retries(retries)
                .retry_delay(RetryDelay::PerAttempt(vec![
                    Duration::from_millis(300),
                    Duration::ZERO,
                ]))
                .run(|| {
                    let attempts = attempts.clone();
                    async move {
                        let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
                        if attempt <= failures {
                            Err(BoxError::from(format!("attempt {attempt} failed")))
                        } else {
                            Ok(attempt)
                        }
                    }
                })
                .await
        })
        .await
        .unwrap();
    (
        report.flow_run_id,
        matches!(report.outcome, Outcome::Completed(_)),
    )
}

#[tokio::test]
async fn a_task_failing_twice_with_retries_three_is_one_task_run_that_ran_three_times() {
    let client = client().await;
    let (run, completed) = flaky_flow(&client, 2, 3).await;
    assert!(completed);
    let tasks = task_runs_of(&client, run).await;
    assert_eq!(tasks.len(), 1, "one task run for every attempt");
    let task = &tasks[0];
    assert_eq!(task.run_count, 3);
    assert_eq!(task.state_type, Some(StateType::Completed));
    assert_eq!(task.flow_run_run_count, 1);
    assert_eq!(task.empirical_policy.as_ref().unwrap().retries, Some(3));
    let names: Vec<_> = states(&client, task).await.into_iter().map(|(_, n)| n).collect();
    // A delay: AwaitingRetry then Retrying; no delay: Retrying at once.
    assert_eq!(
        names,
        [
            "Pending",
            "Running",
            "AwaitingRetry",
            "Retrying",
            "Retrying",
            "Completed"
        ]
    );
    let flow = client.flow_runs().get(run).await.unwrap();
    assert_eq!(flow.state_type, Some(StateType::Completed));
}

#[tokio::test]
async fn with_retries_one_a_task_failing_twice_fails_and_so_does_its_flow() {
    let client = client().await;
    let (run, completed) = flaky_flow(&client, 2, 1).await;
    assert!(!completed);
    let tasks = task_runs_of(&client, run).await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].run_count, 2);
    assert_eq!(tasks[0].state_type, Some(StateType::Failed));
    let flow = client.flow_runs().get(run).await.unwrap();
    assert_eq!(flow.state_type, Some(StateType::Failed));
    assert_eq!(flow.state.unwrap().message.as_deref(), Some("attempt 2 failed"));
}

#[tokio::test]
async fn a_retry_condition_that_refuses_the_error_fails_at_once() {
    let client = client().await;
    let report = client
        .new_flow_run(&unique("rust-retry-if"))
        .run(|ctx| async move {
            ctx.task("permanent")
                .retries(5)
                .retry_if(|e: &std::io::Error| e.kind() == std::io::ErrorKind::TimedOut)
                .run(|| async { Err::<(), _>(std::io::Error::other("no such table")) })
                .await
        })
        .await
        .unwrap();
    assert!(matches!(report.outcome, Outcome::Failed(TaskError::Failed(_))));
    let tasks = task_runs_of(&client, report.flow_run_id).await;
    assert_eq!(tasks[0].run_count, 1, "not retried");
    assert_eq!(tasks[0].state_type, Some(StateType::Failed));
}

/// Sets its flag when dropped: whether a future was dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_task_past_its_timeout_is_failed_timed_out_and_its_future_dropped() {
    let client = client().await;
    let dropped = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let (d, f) = (dropped.clone(), finished.clone());
    // The body's own length: a task that was not stopped at its timeout would run this long.
    const BODY: Duration = Duration::from_secs(30);
    let report = client
        .new_flow_run(&unique("rust-timeout"))
        .run(move |ctx| async move {
            let slow = ctx
                .task("slow")
                .timeout(Duration::from_secs(1))
                .run(|| {
                    let (d, f) = (d.clone(), f.clone());
                    async move {
                        let _flag = DropFlag(d);
                        tokio::time::sleep(BODY).await;
                        f.store(true, Ordering::SeqCst);
                        Ok::<_, BoxError>(())
                    }
                })
                .await;
            assert!(matches!(slow, Err(TaskError::TimedOut { after }) if after == Duration::from_secs(1)));
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap();
    assert!(dropped.load(Ordering::SeqCst) && !finished.load(Ordering::SeqCst));
    assert!(matches!(report.outcome, Outcome::Completed(())));
    let tasks = task_runs_of(&client, report.flow_run_id).await;
    let task = &tasks[0];
    let last = states(&client, task).await.pop().unwrap();
    assert_eq!(last, (StateType::Failed, "TimedOut".to_string()));
    // Ended at its timeout, not at the end of its body, however slow the server was meanwhile.
    let ran = (task.end_time.unwrap() - task.start_time.unwrap())
        .to_std()
        .unwrap();
    assert!(ran < BODY, "{ran:?}");
    let message = task.state.as_ref().unwrap().message.clone().unwrap();
    assert_eq!(message, "Task run exceeded timeout of 1.0 second(s)");
}

/// Runs the `task_semantics` example with this cache key and storage; the flow run's id.
async fn run_example(api_url: &str, cache_key: &str, home: &std::path::Path) -> Uuid {
    let output = tokio::process::Command::new(example("task_semantics"))
        .env("PREFECT_API_URL", api_url)
        .env("PREFECT_HOME", home)
        .env("CACHE_KEY", cache_key)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("flow run "))
        .and_then(|id| id.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `flow run <id>` in {stdout}"))
}

fn named<'a>(tasks: &'a [TaskRun], prefix: &str) -> Vec<&'a TaskRun> {
    let mut found: Vec<_> = tasks
        .iter()
        .filter(|t| t.name.as_deref().unwrap_or_default().starts_with(prefix))
        .collect();
    found.sort_by_key(|t| t.name.clone());
    found
}

#[tokio::test]
async fn the_example_caches_across_processes_and_draws_its_edge() {
    let server = server().await;
    let client = client().await;
    let home = tempfile::tempdir().unwrap();
    let key = unique("task-semantics");
    let first = run_example(server.api_url(), &key, home.path()).await;
    let tasks = task_runs_of(&client, first).await;
    let flaky = named(&tasks, "flaky");
    assert_eq!((flaky.len(), flaky[0].run_count), (1, 3));
    let slow = named(&tasks, "slow");
    assert_eq!(slow[0].state.as_ref().unwrap().name.as_deref(), Some("TimedOut"));
    let cached = named(&tasks, "cached");
    let names: Vec<_> = cached
        .iter()
        .map(|t| t.state.as_ref().unwrap().name.clone().unwrap())
        .collect();
    assert_eq!(names, ["Completed", "Cached"]);
    let double = named(&tasks, "double");
    let input = serde_json::to_value(&double[0].task_inputs).unwrap();
    assert_eq!(input["x"][0]["input_type"], "task_run");
    assert_eq!(input["x"][0]["id"], cached[1].id.to_string());
    assert_eq!(
        client.flow_runs().get(first).await.unwrap().state_type,
        Some(StateType::Completed)
    );

    // Another process, the same storage and key: both calls are hits.
    let second = run_example(server.api_url(), &key, home.path()).await;
    let tasks = task_runs_of(&client, second).await;
    let names: Vec<_> = named(&tasks, "cached")
        .iter()
        .map(|t| t.state.as_ref().unwrap().name.clone().unwrap())
        .collect();
    assert_eq!(names, ["Cached", "Cached"]);
}

#[tokio::test]
async fn an_expired_or_refreshed_cache_runs_the_body_again() {
    let client = client().await;
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<LocalStorage> = Arc::new(LocalStorage::new(dir.path()));
    let key = unique("expiring");
    let bodies = Arc::new(AtomicU32::new(0));
    let (s, k, b) = (storage.clone(), key.clone(), bodies.clone());
    let report = client
        .new_flow_run(&unique("rust-cache"))
        .run(move |ctx| async move {
            let call = |expiration: Duration, refresh: bool| {
                let (s, k, b) = (s.clone(), k.clone(), b.clone());
                ctx.task("cached")
                    .persisted()
                    .storage(s)
                    .cache_key(k)
                    .cache_expiration(expiration)
                    .refresh_cache(refresh)
                    .run(move || {
                        let b = b.clone();
                        async move { Ok::<_, BoxError>(b.fetch_add(1, Ordering::SeqCst) + 1) }
                    })
            };
            let first = call(Duration::from_millis(300), false).await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let expired = call(Duration::from_secs(3600), false).await?;
            let hit = call(Duration::from_secs(3600), false).await?;
            let refreshed = call(Duration::from_secs(3600), true).await?;
            Ok::<_, TaskError<BoxError>>((first, expired, hit, refreshed))
        })
        .await
        .unwrap();
    match report.outcome {
        // The hit returns the cached value (2), without running the body.
        Outcome::Completed(values) => assert_eq!(values, (1, 2, 2, 3)),
        other => panic!("{other:?}"),
    }
    assert_eq!(bodies.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_result_rust_wrote_is_read_by_python_and_a_python_result_by_rust() {
    let server = server().await;
    let client = client().await;
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(LocalStorage::new(dir.path()));
    let s = storage.clone();
    let report = client
        .new_flow_run(&unique("rust-result"))
        .run(move |ctx| async move {
            ctx.task("answer")
                .persisted()
                .storage(s)
                .run(|| async { Ok::<_, BoxError>(json!({"answer": 42, "rows": [1, 2, 3]})) })
                .await
        })
        .await
        .unwrap();
    let task = task_runs_of(&client, report.flow_run_id).await.remove(0);
    let read = python(
        server.api_url(),
        "import asyncio, json, sys, uuid\n\
         from prefect.client.orchestration import get_client\n\
         async def main():\n    \
             async with get_client() as client:\n        \
                 run = await client.read_task_run(uuid.UUID(sys.argv[1]))\n        \
                 print(json.dumps(await run.state.result()))\n\
         asyncio.run(main())\n",
        &[&task.id.to_string()],
    )
    .await;
    let value: Value = serde_json::from_str(read.trim()).unwrap();
    assert_eq!(value, json!({"answer": 42, "rows": [1, 2, 3]}));

    // Python's task, JSON serializer, its record in Python's storage: read from Rust.
    let python_home = tempfile::tempdir().unwrap();
    let script = "import sys\n\
         from prefect import flow, task\n\
         @task(persist_result=True, result_serializer='json')\n\
         def answer():\n    \
             return {'answer': 43, 'from': 'python'}\n\
         @flow(name=sys.argv[1])\n\
         def f():\n    \
             return answer()\n\
         from prefect.context import get_run_context\n\
         state = f(return_state=True)\n\
         print(state.state_details.flow_run_id)\n";
    let flow_name = unique("python-result");
    let output = python_in(python_home.path(), server.api_url(), script, &[&flow_name]).await;
    let run: Uuid = output.lines().last().unwrap().trim().parse().unwrap();
    let task = task_runs_of(&client, run).await.remove(0);
    let data = task.state.unwrap().data.unwrap();
    let value: Value = read_result(&data, &LocalStorage::new(python_home.path().join("storage"))).unwrap();
    assert_eq!(value, json!({"answer": 43, "from": "python"}));
}
