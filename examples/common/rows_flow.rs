//! The flow `rust-serve-example` of the `serve` and `worker` examples: `rows` task runs named
//! `row`, each sleeping `sleep_s` seconds and logging one line; returns `rows`.

use std::time::Duration;

use prefect_client::runs::RunContext;
use prefect_client::serve::RustFlow;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The flow's name.
pub const FLOW: &str = "rust-serve-example";

/// The flow's parameters, as Prefect's UI shows them in a run's form.
#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct Params {
    /// How many task runs the flow run makes.
    #[serde(default = "three")]
    pub rows: u64,
    /// How long each task run sleeps, in seconds.
    #[serde(default)]
    pub sleep_s: f64,
}

fn three() -> u64 {
    3
}

/// `rows` task runs, one after another.
async fn rows(ctx: RunContext, params: Params) -> Result<u64, BoxError> {
    if !params.sleep_s.is_finite() || params.sleep_s < 0.0 {
        return Err(format!("sleep_s is {}; give a number of seconds >= 0", params.sleep_s).into());
    }
    for row in 0..params.rows {
        let sleep = Duration::from_secs_f64(params.sleep_s);
        ctx.task("row")
            .run(|| async move {
                tokio::time::sleep(sleep).await;
                tracing::info!(row, "row done");
                Ok::<_, BoxError>(row)
            })
            .await?;
    }
    Ok(params.rows)
}

/// The flow, with its handler (heartbeats as `PREFECT_FLOWS_HEARTBEAT_FREQUENCY` says).
pub fn flow() -> RustFlow {
    RustFlow::new(FLOW, rows)
}

/// Logs to the terminal, and the runs' lines to Prefect.
pub fn init_logging(client: &prefect_client::Client) {
    use tracing_subscriber::prelude::*;
    tracing_subscriber::registry()
        .with(prefect_client::runs::PrefectLogLayer::new(client))
        .with(tracing_subscriber::fmt::layer().with_filter(tracing_subscriber::filter::LevelFilter::INFO))
        .init();
}
