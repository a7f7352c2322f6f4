//! A small Rust pipeline as a Prefect flow run: three task runs (two at once) and their logs,
//! shown in Prefect's UI. Prints the run's URL.
//!
//! ```sh
//! cargo run --example rust_flow
//! ```
//!
//! Uses `PREFECT_API_URL` when set; otherwise starts a local Prefect server.

use std::time::Duration;

use prefect_client::runs::PrefectLogLayer;
use tracing_subscriber::prelude::*;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let (client, _server) = prefect_testkit::connect_or_start().await?;
    // Log events inside the runs go to Prefect; everything goes to the terminal too.
    let prefect_logs = PrefectLogLayer::new(&client);
    tracing_subscriber::registry()
        .with(prefect_logs)
        .with(tracing_subscriber::fmt::layer().with_filter(tracing_subscriber::filter::LevelFilter::INFO))
        .init();

    let report = client
        .new_flow_run("rust-pipeline")
        .parameters(&serde_json::json!({ "source": "orders.csv" }))
        .tags(["rust", "example"])
        .run(|ctx| async move {
            tracing::info!(url = ctx.url(), "pipeline started");
            let rows = ctx
                .task("extract")
                .run(|| async {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    tracing::info!(rows = 500, "read the orders");
                    Ok::<_, BoxError>(500u32)
                })
                .await?;
            let (valid, total) = tokio::join!(
                ctx.task("validate").run(|| async move {
                    tracing::info!("checking {rows} rows");
                    Ok::<_, BoxError>(rows - 3)
                }),
                ctx.task("sum").run(|| async move {
                    tracing::info!("summing {rows} rows");
                    Ok::<_, BoxError>(u64::from(rows) * 42)
                }),
            );
            let (valid, total) = (valid?, total?);
            tracing::info!(valid, total, "pipeline done");
            Ok::<_, BoxError>(valid)
        })
        .await?;
    println!("flow run {}: {:?}", report.url, report.outcome);
    Ok(())
}
