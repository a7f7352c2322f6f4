//! Prefect's task semantics from Rust, in one run of the flow `rust-task-semantics`:
//! - `flaky` fails its first two attempts and succeeds on the third (retries 3): one task run,
//!   `run_count` 3;
//! - `slow` has a timeout of 1 s and sleeps 10 s: FAILED "TimedOut", which the flow handles;
//! - `cached` persists its value `{"answer": 42}` under the cache key `CACHE_KEY` (default
//!   `task-semantics`) and is called twice: the second call, and any call of another process
//!   with the same key, completes "Cached" without running;
//! - `double` takes `cached`'s value as its input (an edge in the UI's run graph).
//!
//! ```sh
//! cargo run --example task_semantics
//! ```
//!
//! Prints `flow run <id>`; the flow ends COMPLETED. Uses `PREFECT_API_URL` when set; otherwise
//! starts a local Prefect server.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use prefect_client::runs::{Outcome, PrefectLogLayer, RetryDelay, RunContext, TaskError};
use serde::{Deserialize, Serialize};
use tracing_subscriber::prelude::*;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `cached`'s value.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Answer {
    answer: u64,
}

async fn flow(ctx: RunContext, cache_key: String) -> Result<u64, TaskError<BoxError>> {
    let attempts = Arc::new(AtomicU32::new(0));
    let flaky = ctx
        .task("flaky")
        .retries(3)
        .retry_delay(RetryDelay::Fixed(Duration::from_millis(200)))
        .run(|| {
            let attempts = attempts.clone();
            async move {
                let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
                if attempt < 3 {
                    return Err(BoxError::from(format!("attempt {attempt} failed")));
                }
                tracing::info!(attempt, "flaky succeeded");
                Ok(attempt)
            }
        })
        .await?;

    let slow = ctx
        .task("slow")
        .timeout(Duration::from_secs(1))
        .run(|| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, BoxError>(())
        })
        .await;
    match slow {
        Err(TaskError::TimedOut { after }) => tracing::info!(?after, "slow timed out, as it should"),
        other => tracing::warn!(?other, "slow did not time out"),
    }

    let mut answer = None;
    for _ in 0..2 {
        let output = ctx
            .task("cached")
            .persisted()
            .cache_key(cache_key.clone())
            .output(|| async { Ok::<_, BoxError>(Answer { answer: 42 }) })
            .await?;
        answer = Some(output);
    }
    let answer = answer.expect("cached ran");

    let doubled = ctx
        .task("double")
        .input("x", &answer)
        .run(|| async { Ok::<_, BoxError>(answer.answer * 2) })
        .await?;
    tracing::info!(flaky, doubled, "done");
    Ok(doubled)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let (client, _server) = prefect_testkit::connect_or_start().await?;
    tracing_subscriber::registry()
        .with(PrefectLogLayer::new(&client))
        .with(tracing_subscriber::fmt::layer().with_filter(tracing_subscriber::filter::LevelFilter::INFO))
        .init();
    let cache_key = std::env::var("CACHE_KEY")
        .ok()
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| "task-semantics".to_string());
    let report = client
        .new_flow_run("rust-task-semantics")
        .run(move |ctx| flow(ctx, cache_key))
        .await?;
    println!("flow run {}", report.flow_run_id);
    println!("{}", report.url);
    match report.outcome {
        Outcome::Completed(doubled) => {
            println!("completed: {doubled}");
            Ok(())
        }
        other => Err(format!("the flow did not complete: {other:?}").into()),
    }
}
