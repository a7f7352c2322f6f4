//! Runs handed over to Rust code: Prefect's own process worker running the example binary as a
//! deployment's command, and `run_handed_over` executing one run and exiting.

mod common;

use std::time::Duration;

use prefect_client::resources::deployments::DeploymentSpec;
use prefect_client::types::{DeploymentResponse, StateType};
use prefect_client::{Client, Error};
use serde_json::json;
use uuid::Uuid;

use common::serving::*;

/// Applies the deployment `name` of the `serve` example's flow in the work pool `pool`, with
/// `job_variables`.
async fn apply_in_pool(
    client: &Client,
    name: &str,
    pool: &str,
    job_variables: serde_json::Value,
) -> Result<DeploymentResponse, Error> {
    let spec = DeploymentSpec::new("rust-serve-example", name)
        .work_pool(pool)
        .job_variables(&job_variables);
    client
        .deployments()
        .apply(&spec)
        .await
        .map(|applied| applied.object)
}

/// Runs the `serve` example as a deployment's command runs: handed the run `run` to execute
/// (`PREFECT__FLOW_RUN_ID`); its exit status and output.
async fn hand_over(api_url: &str, run: Uuid) -> std::process::Output {
    tokio::process::Command::new(example("serve"))
        .env("PREFECT_API_URL", api_url)
        .env("PREFECT__FLOW_RUN_ID", run.to_string())
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn prefects_own_process_worker_runs_the_example_binary_as_a_deployments_command() {
    let server = own_server().start().await.unwrap();
    let client = server.client().unwrap();
    let pool = "process-pool";
    let command = example("serve").display().to_string();
    create_process_pool(server.api_url(), pool).await;
    let deployment = apply_in_pool(&client, "via-process-worker", pool, json!({ "command": command }))
        .await
        .unwrap();
    // A misspelt job variable is refused: the process worker would ignore it.
    let err = apply_in_pool(&client, "misspelt", pool, json!({ "comand": command }))
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
    let run = create_run_with(&client, deployment.id, json!({ "rows": 2 })).await;
    let ended = wait_final(&client, &[run], Duration::from_secs(120)).await;
    assert_eq!(ended[&run].state_type, Some(StateType::Completed));
    assert_eq!(task_runs_of(&client, run).await.len(), 2);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rows_logged(&client, run).await, 2, "its logs arrived");
}

#[tokio::test]
async fn a_handed_over_run_is_executed_by_the_example_and_exits_zero() {
    let server = own_server().start().await.unwrap();
    let client = server.client().unwrap();
    let deployment = client
        .deployments()
        .apply(&DeploymentSpec::new("rust-serve-example", "handed-over"))
        .await
        .unwrap()
        .object;
    let run = create_run_with(&client, deployment.id, json!({ "rows": 2 })).await;
    let output = hand_over(server.api_url(), run).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ran = client.flow_runs().get(run).await.unwrap();
    assert_eq!(ran.state_type, Some(StateType::Completed));
    assert_eq!(task_runs_of(&client, run).await.len(), 2);
    // A run of another flow is not this program's: a non-zero exit saying so.
    let other = client.flows().create("some-other-flow").await.unwrap();
    let other_deployment = client.deployments().create(other.id, "x").await.unwrap();
    let foreign = client
        .deployments()
        .create_run(other_deployment.id)
        .await
        .unwrap();
    let output = hand_over(server.api_url(), foreign.id).await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("some-other-flow"));
}
