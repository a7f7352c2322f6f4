//! Runs a deployment and waits for its flow run.
//!
//! ```sh
//! cargo run --example run_deployment
//! ```
//!
//! With `PREFECT_API_URL` set it uses that server and the deployment named by the first argument
//! (`flow-name/deployment-name`); unset, it starts a local server and creates a flow and a
//! deployment there. Without a worker nothing executes the run, so against the local server this
//! example plays the worker's part and moves the run through Running to Completed itself.

use std::time::Duration;

use prefect_client::Client;
use prefect_client::types::StateType;
use prefect_testkit::LocalServer;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, client, target) = match std::env::var("PREFECT_API_URL") {
        Ok(_) => {
            let target = std::env::args()
                .nth(1)
                .ok_or("give the deployment as `flow-name/deployment-name`")?;
            (None, Client::from_env()?, Some(target))
        }
        Err(_) => {
            eprintln!("PREFECT_API_URL is unset: starting a local Prefect server...");
            let server = LocalServer::start().await?;
            let client = server.client()?;
            (Some(server), client, None)
        }
    };

    let deployment = match &target {
        Some(name) => client.deployments().get_by_name(name).await?,
        None => {
            let flow = client.flows().create("rust-example").await?;
            client.deployments().create(flow.id, "on-demand").await?
        }
    };
    let run = client
        .deployments()
        .create_run(deployment.id)
        .parameters(&serde_json::json!({ "rows": 500 }))
        .tags(["rust"])
        .send()
        .await?;
    println!("created flow run {} ({:?})", run.id, run.state_type);

    if target.is_none() {
        // No worker on the local server: act as one.
        client
            .flow_runs()
            .set_state(run.id, StateType::Running)
            .force()
            .send()
            .await?;
        client
            .flow_runs()
            .set_state(run.id, StateType::Completed)
            .message("done")
            .send()
            .await?;
    }
    let finished = client
        .flow_runs()
        .wait_for_completion(run.id, Duration::from_secs(600))
        .await?;
    println!("flow run {} finished: {:?}", finished.id, finished.state_type);
    Ok(())
}
