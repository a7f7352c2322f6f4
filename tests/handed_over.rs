//! Runs handed over to Rust code: Prefect's own process worker running the example binary as a
//! deployment's command, and `run_handed_over` executing one run and exiting.

mod common;

use std::time::Duration;

use prefect_client::resources::deployments::DeploymentSpec;
use prefect_client::types::StateType;
use serde_json::json;

use common::serving::*;

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
        .create_run(deployment.id)
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
        .create_run(deployment.id)
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
    let foreign = client
        .deployments()
        .create_run(other_deployment.id)
        .await
        .unwrap();
    let output = tokio::process::Command::new(example("serve"))
        .env("PREFECT_API_URL", server.api_url())
        .env("PREFECT__FLOW_RUN_ID", foreign.id.to_string())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("some-other-flow"));
}
