//! Runs Prefect's own workers hand over: a worker (process, Docker, Kubernetes, ECS) starts the
//! deployment's command with `PREFECT__FLOW_RUN_ID` set, and the program executes exactly that
//! run and exits, as `prefect flow-run execute` does for Python.

use std::process::ExitCode;
use std::sync::Arc;

use uuid::Uuid;

use super::core::Core;
use super::flow::RustFlow;
use super::found::Found;
use super::handle::RunEnd;
use crate::Client;
use crate::runs::{Outcome, Proposal, Run, Stop, propose_state};
use crate::types::StateType;

/// The variable Prefect's workers set to the id of the run a process is to execute.
pub const FLOW_RUN_ID_VARIABLE: &str = "PREFECT__FLOW_RUN_ID";

/// Executes the flow run Prefect handed over to this process, if it did: with
/// `PREFECT__FLOW_RUN_ID` set, the run of that id, by the flow of `flows` named as the run's
/// flow, and returns the code the process should exit with; `None` when the variable is not
/// set (the program goes on to serve, say).
///
/// The run is claimed (PENDING) if the worker left it scheduled, then executed as a served run
/// is (cancellation, heartbeats, retries, timeout, the deployment's concurrency lease). SIGTERM
/// or Ctrl-C while it runs schedules it again, for another worker, as Prefect's
/// `PREFECT_FLOW_RUN_EXECUTE_SIGTERM_BEHAVIOR=reschedule`. The exit code is 0 when the run
/// completed, was cancelled, or was scheduled again (Prefect's worker must not mark it crashed)
/// and 1 otherwise: it failed, crashed, or could not be executed (the reason is printed to
/// standard error).
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client, flow: prefect_client::serve::RustFlow) -> std::process::ExitCode {
/// use prefect_client::serve::run_handed_over;
///
/// if let Some(code) = run_handed_over(&client, [&flow]).await {
///     return code; // a worker handed a run over: it is done
/// }
/// // ... otherwise serve, or work on a pool ...
/// # std::process::ExitCode::SUCCESS }
/// ```
pub async fn run_handed_over<'a>(
    client: &Client,
    flows: impl IntoIterator<Item = &'a RustFlow>,
) -> Option<ExitCode> {
    let id = std::env::var(FLOW_RUN_ID_VARIABLE)
        .ok()
        .filter(|v| !v.trim().is_empty())?;
    let flows: Vec<&RustFlow> = flows.into_iter().collect();
    Some(match execute(client, &id, &flows).await {
        Ok(code) => code,
        Err(problem) => {
            eprintln!("prefect-client: cannot execute flow run {id}: {problem}");
            ExitCode::FAILURE
        }
    })
}

async fn execute(client: &Client, id: &str, flows: &[&RustFlow]) -> Result<ExitCode, String> {
    let id: Uuid = id
        .trim()
        .parse()
        .map_err(|e| format!("{FLOW_RUN_ID_VARIABLE} is not a flow run id ({e})"))?;
    let core = Arc::new(
        Core::new(client, flows, serde_json::Map::new())
            .map_err(|e| e.to_string())?
            .handed_over(),
    );
    let run = client.flow_runs().get(id).await.map_err(|e| e.to_string())?;
    let found = Found::from(run);
    let Some(flow) = core.flow_of(found.flow_id).await.map_err(|e| e.to_string())? else {
        let name = client
            .flows()
            .get(found.flow_id)
            .await
            .map(|f| f.name.to_string())
            .unwrap_or_default();
        return Err(format!(
            "it is a run of the flow {name:?}, and this program runs {:?}",
            flows.iter().map(|f| f.name()).collect::<Vec<_>>()
        ));
    };
    let claim = match &found.state_type {
        Some(StateType::Scheduled) => true,
        Some(StateType::Pending | StateType::Running) => false,
        Some(StateType::Cancelling) => {
            // Cancelled before it started here: it ends so, as `prefect flow-run execute` does.
            let proposal = Proposal::new(StateType::Cancelled)
                .message(Some("cancelled before it started"))
                .forced(true);
            propose_state(client, Run::Flow(id), &proposal)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(ExitCode::SUCCESS);
        }
        other => {
            eprintln!("prefect-client: flow run {id} is {other:?} already; nothing to execute");
            return Ok(ExitCode::SUCCESS);
        }
    };
    let signals = {
        let core = core.clone();
        tokio::spawn(async move {
            super::shutdown::signal().await;
            tracing::info!("shutdown signal: scheduling the handed-over run again");
            core.stop_all(Stop::Reschedule(
                "the process executing this run was asked to stop; scheduled again for another worker".into(),
            ));
        })
    };
    let ended = if claim {
        core.claim(found, flow).await
    } else {
        core.adopt(found, flow)
    };
    let end = match ended {
        Ok(claimed) => core.execute(claimed).await.end,
        Err(ended) => ended.end,
    };
    signals.abort();
    Ok(match end {
        RunEnd::Ended(Outcome::Completed(()) | Outcome::Cancelled) => ExitCode::SUCCESS,
        RunEnd::Ended(Outcome::Stopped {
            state: StateType::Scheduled,
            ..
        }) => ExitCode::SUCCESS,
        RunEnd::Skipped { reason } => {
            eprintln!("prefect-client: flow run {id} was not executed here: {reason}");
            ExitCode::SUCCESS
        }
        RunEnd::Ended(outcome) => {
            eprintln!("prefect-client: flow run {id} ended {outcome:?}");
            ExitCode::FAILURE
        }
        RunEnd::Failed(e) => return Err(e.to_string()),
    })
}
