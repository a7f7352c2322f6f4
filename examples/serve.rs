//! Serves the deployment `rust-serve-example/example` of the flow `rust-serve-example` from this
//! process, as Prefect's `flow.serve()` does: runs created by its schedule, the UI's "Run"
//! button or `run_deployment` start here within moments. Parameters: `rows` (integer >= 0,
//! default 3) and `sleep_s` (number, default 0); a run makes `rows` task runs named `row`, each
//! sleeping `sleep_s` seconds and logging a line, and returns `rows`.
//!
//! ```sh
//! cargo run --example serve
//! ```
//!
//! Prints a line with `serving` and the deployment's id once it serves. SIGTERM or Ctrl-C:
//! stops claiming runs, lets running ones finish (30 s at most; a second signal ends that wait
//! and schedules them again), then exits 0. With
//! `PREFECT__FLOW_RUN_ID` set (Prefect's own worker running this binary as a deployment's
//! `command`), it executes that run only and exits: 0 when it completed.
//!
//! Uses `PREFECT_API_URL` when set; otherwise starts a local Prefect server.

#[path = "common/rows_flow.rs"]
mod rows_flow;

use std::process::ExitCode;

use prefect_client::serve::run_handed_over;
use rows_flow::{BoxError, FLOW};

#[tokio::main]
async fn main() -> Result<ExitCode, BoxError> {
    let (client, _server) = prefect_testkit::connect_or_start().await?;
    rows_flow::init_logging(&client);
    let flow = rows_flow::flow();
    if let Some(code) = run_handed_over(&client, [&flow]).await {
        return Ok(code);
    }
    let serving = client
        .serve([&flow])
        .deployment(flow.deployment("example"))
        .start()
        .await?;
    println!(
        "serving deployment {FLOW}/example, id {}",
        serving.deployments()[0].id
    );
    serving.until_signal().await?;
    Ok(ExitCode::SUCCESS)
}
