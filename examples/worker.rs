//! A Rust worker on the work pool named by `PREFECT_WORK_POOL` (default `rust-pool`, created
//! when missing): it executes the pool's runs of the flow `rust-serve-example` (see the `serve`
//! example), for any deployment of that flow in the pool, whoever created it, and shows online
//! in the pool's workers.
//!
//! ```sh
//! cargo run --example worker
//! ```
//!
//! SIGTERM or Ctrl-C: stops claiming runs, lets running ones finish (30 s at most; a second
//! signal ends that wait and schedules them again), then exits 0.
//! Uses `PREFECT_API_URL` when set; otherwise starts a local Prefect server.

#[path = "common/rows_flow.rs"]
mod rows_flow;

use rows_flow::BoxError;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let (client, _server) = prefect_testkit::connect_or_start().await?;
    rows_flow::init_logging(&client);
    let pool = std::env::var("PREFECT_WORK_POOL")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "rust-pool".to_string());
    let flow = rows_flow::flow();
    let working = client.worker(&pool, [&flow]).create_pool(true).start().await?;
    if let Some(worked) = working.work_pool() {
        println!("working on pool {pool} ({})", worked.id);
    }
    working.until_signal().await?;
    Ok(())
}
