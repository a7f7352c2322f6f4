//! The Rust worker (`client.worker` and the `worker` example) on a work pool, against real
//! servers: ONLINE, the pool's limits, runs behind other flows' runs, SIGTERM.

mod common;

use std::time::Duration;

use prefect_client::Client;
use prefect_client::resources::deployments::DeploymentSpec;
use prefect_client::runs::RunContext;
use prefect_client::serve::{RustFlow, ServeSettings};
use prefect_client::types::StateType;
use serde_json::json;

use common::serving::*;
use common::{client, unique};

/// The workers of the work pool `pool`.
async fn workers_of(client: &Client, pool: &str) -> Vec<prefect_client::types::WorkerResponse> {
    client
        .raw()
        .read_workers(pool, &Default::default())
        .await
        .unwrap()
        .into_inner()
}

/// A worker's status as Prefect shows it (`ONLINE`, `OFFLINE`).
fn status_of(worker: &prefect_client::types::WorkerResponse) -> Option<String> {
    worker.status.as_ref().map(|s| s.to_string())
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
    let workers = workers_of(&client, &pool).await;
    assert_eq!(workers.len(), 1);
    assert_eq!(status_of(&workers[0]), Some("ONLINE".into()));
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
        .unwrap()
        .object;
    let mut runs = Vec::new();
    for _ in 0..5 {
        runs.push(create_run_with(&client, deployment.id, json!({ "sleep_s": 1.5 })).await);
    }
    let submitted = |state: &StateType| matches!(state, StateType::Running | StateType::Pending);
    let (peak, completed) = peak_until_completed(&client, &runs, submitted, Duration::from_secs(120)).await;
    assert!(completed, "the runs did not all complete");
    assert!(peak <= 2, "the pool's limit of two held: {peak}");
    let run = client.flow_runs().get(runs[0]).await.unwrap();
    assert_eq!(
        run.labels.get("prefect.work-pool.name").map(|v| v.to_string()),
        Some(pool.clone())
    );
    shut_down(working).await;
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
        .settings(
            ServeSettings::default()
                .limit(2)
                .poll_interval(Duration::from_secs(1)),
        )
        .start()
        .await
        .unwrap();
    // Eight due runs of a flow nobody here runs, first in the pool's order...
    let others = client
        .deployments()
        .apply(&other.deployment("elsewhere").work_pool(&pool))
        .await
        .unwrap()
        .object;
    for _ in 0..8 {
        client.deployments().create_run(others.id).await.unwrap();
    }
    // ...and one of this worker's, due in 15 s (past the wake-up on its creation's event, so
    // only the polls can find it).
    let own = client
        .deployments()
        .apply(&mine.deployment("here").work_pool(&pool))
        .await
        .unwrap()
        .object;
    let run = client
        .deployments()
        .create_run(own.id)
        .scheduled_start(chrono::Utc::now() + chrono::Duration::seconds(15))
        .await
        .unwrap();
    completes(&client, run.id, Duration::from_secs(60)).await;
    shut_down(working).await;
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
    let workers = workers_of(&client, &pool).await;
    assert_eq!(workers.len(), 1, "{workers:?}");
    assert_eq!(status_of(&workers[0]), Some("ONLINE".into()));
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
    worker.exits_zero_on_sigterm(Duration::from_secs(60)).await;
}

#[tokio::test]
async fn a_rust_worker_records_the_labels_job_variable_of_the_deployment_and_the_run() {
    let client = client().await;
    let pool = unique("rust-labelled-pool");
    let name = unique("rust-labelled");
    let flow = trivial(&name);
    let working = client
        .worker(&pool, [&flow])
        .create_pool(true)
        .settings(ServeSettings::default().poll_interval(Duration::from_secs(1)))
        .start()
        .await
        .unwrap();
    let spec = flow
        .deployment("labelled")
        .work_pool(&pool)
        .job_variables(&serde_json::json!({ "labels": { "team": "data", "env": "prod" } }));
    let deployment = client.deployments().apply(&spec).await.unwrap().object;
    let run = client
        .deployments()
        .create_run(deployment.id)
        .job_variables(&serde_json::json!({ "labels": { "env": "ci" } }))
        .await
        .unwrap();
    let ended = wait_final(&client, &[run.id], Duration::from_secs(60)).await;
    let ended = &ended[&run.id];
    assert_eq!(ended.state_type, Some(StateType::Completed));
    let labels = serde_json::to_value(&ended.labels).unwrap();
    assert_eq!(labels["team"], "data", "{labels}");
    assert_eq!(
        labels["env"], "ci",
        "the run's own over its deployment's: {labels}"
    );
    assert_eq!(labels["prefect.work-pool.name"], pool.as_str(), "{labels}");
    // A variable the template does not offer is refused before the run is made.
    let refused = client
        .deployments()
        .create_run(deployment.id)
        .job_variables(&serde_json::json!({ "name": "x" }))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("name"), "{refused}");
    shut_down(working).await;
}
