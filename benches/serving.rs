//! Prefect running Rust code, side by side with Prefect's Python `flow.serve()` on one local
//! Prefect server started here (not run in CI; `cargo bench --no-run` keeps it compiling).
//!
//!     cargo bench --bench serving                  # with Python's flow.serve()
//!     cargo bench --bench serving -- --no-python
//!
//! For each serving process (this binary run again as a child serving a trivial flow through
//! `client.serve`, and a Python process calling `flow.serve()` on a trivial `@flow`):
//! - idle memory: its resident set (VmRSS) after 10 s serving with nothing to run;
//! - latency: runs created one after another (scheduled now), each waited for; the time from
//!   the run's creation to its RUNNING state, both by the server's clock;
//! - throughput: runs created at once, from the first creation to the last end (server clock);
//!   each process at its defaults (5 runs at once, as Prefect's runner).

use std::process::Stdio;
use std::time::Duration;

use prefect_client::Client;
use prefect_client::runs::RunContext;
use prefect_client::serve::RustFlow;
use prefect_client::types::{FlowRunResponse, StateType};
use prefect_testkit::LocalServer;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use uuid::Uuid;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const LATENCY_RUNS: usize = 10;
const THROUGHPUT_RUNS: usize = 50;
const RUST_FLOW: &str = "bench-serve-rust";
const PYTHON_FLOW: &str = "bench-serve-python";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    if let Some(at) = args.iter().position(|a| a == "--serve-child") {
        runtime.block_on(serve_child(&args[at + 1]));
        return;
    }
    let with_python = !args.iter().any(|a| a == "--no-python");
    runtime.block_on(bench(with_python));
}

/// The child: serves the trivial Rust flow's deployment `bench` until SIGTERM.
async fn serve_child(api_url: &str) {
    let client = Client::builder(api_url).build().unwrap();
    let flow = RustFlow::without_parameters(RUST_FLOW, |_ctx: RunContext| async { Ok::<_, BoxError>(()) });
    let serving = client
        .serve([&flow])
        .deployment(flow.deployment("bench"))
        .start()
        .await
        .unwrap();
    println!("serving {}", serving.deployments()[0].id);
    serving.until_signal().await.unwrap();
}

/// The Python serving process's script: a trivial flow served as deployment `bench`.
const PYTHON_SERVE: &str = "from prefect import flow\n\
    @flow(name='bench-serve-python')\n\
    def trivial():\n    return None\n\
    if __name__ == '__main__':\n    trivial.serve(name='bench')\n";

async fn bench(with_python: bool) {
    let server = LocalServer::start().await.expect("local Prefect server");
    let client = server.client().unwrap();
    println!(
        "| Serving process | idle RSS | creation → RUNNING (min / median / max) | trivial runs per second |"
    );
    println!("| --- | --- | --- | --- |");
    let exe = std::env::current_exe().unwrap();
    let mut rust = start(
        Command::new(&exe).args(["--serve-child", server.api_url()]),
        "serving",
    )
    .await;
    let rust_row = measure(&client, &mut rust, RUST_FLOW).await;
    println!("| Rust `client.serve` | {rust_row} |");
    stop(rust).await;
    if with_python {
        let venv = tokio::task::spawn_blocking(prefect_testkit::ensure_venv)
            .await
            .unwrap()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("serve_trivial.py");
        std::fs::write(&script, PYTHON_SERVE).unwrap();
        let mut python = start(
            Command::new(venv.join("bin/python"))
                .arg(&script)
                .current_dir(dir.path())
                .env("PREFECT_API_URL", server.api_url())
                .env("PREFECT_HOME", dir.path())
                .env("PREFECT_LOGGING_LEVEL", "WARNING"),
            "being served",
        )
        .await;
        let python_row = measure(&client, &mut python, PYTHON_FLOW).await;
        println!("| Python `flow.serve()` | {python_row} |");
        stop(python).await;
    }
}

/// Starts a serving process and waits for a line of its output containing `ready`.
async fn start(command: &mut Command, ready: &str) -> Child {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        let ready = ready.to_string();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains(&ready) {
                    let _ = tx.send(());
                }
            }
        });
    }
    tokio::time::timeout(Duration::from_secs(120), rx.recv())
        .await
        .expect("the serving process started")
        .expect("the serving process said it serves");
    child
}

async fn stop(mut child: Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    if tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .is_err()
    {
        let _ = child.start_kill();
    }
}

/// The three figures of one serving process, as a table row's cells.
async fn measure(client: &Client, child: &mut Child, flow: &str) -> String {
    tokio::time::sleep(Duration::from_secs(10)).await;
    let rss = rss_mib(child.id().unwrap());
    let deployment = client
        .deployments()
        .get_by_name(&format!("{flow}/bench"))
        .await
        .unwrap();

    let mut latencies = Vec::new();
    for _ in 0..LATENCY_RUNS {
        let run = client.deployments().create_run(deployment.id).await.unwrap();
        let ended = wait_final(client, &[run.id]).await;
        latencies.push(to_running(&ended[0]));
    }
    latencies.sort_by(f64::total_cmp);

    let mut runs = Vec::new();
    for _ in 0..THROUGHPUT_RUNS {
        runs.push(client.deployments().create_run(deployment.id).await.unwrap().id);
    }
    let ended = wait_final(client, &runs).await;
    let first = ended.iter().filter_map(|r| r.created).min().unwrap();
    let last = ended.iter().filter_map(|r| r.end_time).max().unwrap();
    let completed = ended
        .iter()
        .filter(|r| r.state_type == Some(StateType::Completed))
        .count();
    let rate = THROUGHPUT_RUNS as f64 / (last - first).as_seconds_f64();
    format!(
        "{rss:.1} MiB | {:.3} / {:.3} / {:.3} s | {rate:.2} ({completed} of {THROUGHPUT_RUNS} completed in {:.1} s) |",
        latencies[0],
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
        (last - first).as_seconds_f64()
    )
    .trim_end_matches(" |")
    .to_string()
}

/// Seconds from the run's creation to its start (RUNNING), by the server's clock.
fn to_running(run: &FlowRunResponse) -> f64 {
    (run.start_time.unwrap() - run.created.unwrap()).as_seconds_f64()
}

async fn wait_final(client: &Client, runs: &[Uuid]) -> Vec<FlowRunResponse> {
    let mut done = Vec::new();
    for id in runs {
        loop {
            let run = client.flow_runs().get(*id).await.unwrap();
            if run
                .state_type
                .as_ref()
                .is_some_and(prefect_client::resources::flow_runs::is_final)
            {
                done.push(run);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    done
}

/// The resident set of a process, from /proc.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024.0
}
