//! Rust work as Prefect runs, against a real Prefect server started here (not run in CI;
//! `cargo bench --no-run` keeps it compiling).
//!
//!     cargo bench --bench rust_runs                  # with Prefect's Python @flow/@task
//!     cargo bench --bench rust_runs -- --no-python
//!
//! One flow run with 100 empty task runs one after another: requests per task run (target
//! ≤ 3) and time per task run, beside Prefect's Python `@flow` calling a `@task` 100 times on
//! the same server; and log lines per second the `PrefectLogLayer` takes and ships (50,000
//! lines in one flow run).

use std::time::{Duration, Instant};

use prefect_client::runs::PrefectLogLayer;
use prefect_testkit::LocalServer;
use tracing_subscriber::prelude::*;

const TASKS: usize = 100;
const LINES: usize = 50_000;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let with_python = !std::env::args().any(|a| a == "--no-python");
    let server = LocalServer::start().await.expect("local Prefect server");
    let client = server.client().unwrap();

    println!("## {TASKS} task runs in one flow run");
    for round in 0..2 {
        let before = client.requests_sent();
        let started = Instant::now();
        let mut inner = Duration::ZERO;
        let report = client
            .new_flow_run("bench-rust-runs")
            .run(|ctx| async move {
                let started = Instant::now();
                for _ in 0..TASKS {
                    ctx.task("noop").run(|| async { Ok::<_, BoxError>(()) }).await?;
                }
                Ok::<_, BoxError>(started.elapsed())
            })
            .await
            .unwrap();
        if let Some(took) = report.outcome.completed() {
            inner = took;
        }
        let requests = client.requests_sent() - before;
        println!(
            "| Rust, round {round} | {:.1} ms per task run | {:.2} requests per task run ({requests} for the whole flow run) | flow run {:.2} s |",
            inner.as_secs_f64() * 1e3 / TASKS as f64,
            // The flow run's own five (flow, run, RUNNING, COMPLETED, the cancellation watch's
            // read) are not the tasks'.
            (requests as f64 - 5.0) / TASKS as f64,
            started.elapsed().as_secs_f64()
        );
    }
    if with_python {
        let venv = tokio::task::spawn_blocking(prefect_testkit::ensure_venv)
            .await
            .unwrap()
            .unwrap();
        let home = std::env::temp_dir().join(format!("rust-runs-bench-{}", std::process::id()));
        std::fs::create_dir_all(&home).unwrap();
        let script = format!(
            "import time\nfrom prefect import flow, task\n\
             @task\ndef noop():\n    return None\n\
             @flow\ndef bench():\n    started = time.perf_counter()\n    for _ in range({TASKS}):\n        noop()\n    return time.perf_counter() - started\n\
             for round in range(2):\n    took = bench()\n    print(f'| Python @task, round {{round}} | {{took * 1000 / {TASKS}:.1f}} ms per task run |')\n"
        );
        let output = tokio::process::Command::new(venv.join("bin/python"))
            .args(["-c", &script])
            .env("PREFECT_API_URL", client.api_url())
            .env("PREFECT_HOME", &home)
            .env("PREFECT_LOGGING_LEVEL", "WARNING")
            .output()
            .await
            .unwrap();
        print!("{}", String::from_utf8_lossy(&output.stdout));
        if !output.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        }
        let _ = std::fs::remove_dir_all(&home);
    }

    println!("\n## {LINES} log lines through PrefectLogLayer");
    let layer = PrefectLogLayer::new(&client);
    let shipper = layer.handle();
    let _default = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    let started = Instant::now();
    let logged = client
        .new_flow_run("bench-rust-logs")
        .run(|_ctx| async move {
            let started = Instant::now();
            for n in 0..LINES {
                tracing::info!("line {n}");
            }
            Ok::<_, BoxError>(started.elapsed())
        })
        .await
        .unwrap()
        .outcome
        .completed()
        .unwrap();
    shipper.flush().await;
    let shipped = started.elapsed();
    println!(
        "| taken by the layer | {:.0} lines/s ({:.2} µs per line in the application) |",
        LINES as f64 / logged.as_secs_f64(),
        logged.as_secs_f64() * 1e6 / LINES as f64
    );
    println!(
        "| shipped to the server | {:.0} lines/s ({} sent, {} dropped) |",
        LINES as f64 / shipped.as_secs_f64(),
        shipper.shipped(),
        shipper.dropped()
    );
    drop(_default);

    // The server gone: a layer whose server does not answer (nothing listens on its port),
    // lines logged inside a run's span as `FlowScope::run` makes it.
    let port = prefect_testkit::free_port().unwrap();
    let gone = prefect_client::Client::builder(&format!("http://127.0.0.1:{port}/api"))
        .max_retries(0)
        .build()
        .unwrap();
    let layer = PrefectLogLayer::with_queue(&gone, 10_000);
    let shipper = layer.handle();
    let _default = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    let span = tracing::info_span!("prefect_flow_run", prefect.flow_run_id = %uuid::Uuid::new_v4());
    let started = Instant::now();
    span.in_scope(|| {
        for n in 0..LINES {
            tracing::info!("line {n}");
        }
    });
    let took = started.elapsed();
    println!(
        "| server down, queue of 10,000 | {:.2} µs per line in the application | {} dropped and counted |",
        took.as_secs_f64() * 1e6 / LINES as f64,
        shipper.dropped()
    );
}
