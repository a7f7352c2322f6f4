//! Contention benchmark against a local real Prefect server (not run in CI; `cargo bench --no-run`
//! keeps it compiling).
//!
//!     cargo bench --bench contention                 # SDK, one process and 4 processes, plus Prefect's Python client
//!     cargo bench --bench contention -- --no-python  # SDK only
//!
//! Scenario: 64 tasks share a global limit of 4; each acquisition holds its slot 50 ms; 256
//! acquisitions in all (ideal 256 × 0.05 / 4 = 3.2 s). Reports wall time, HTTP requests per
//! acquisition, the peak of the server's `active_slots` (polled every 10 ms) and the slots left.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use prefect_client::Client;
use prefect_client::local_server::LocalServer;

const TASKS: usize = 64;
const LIMIT: i64 = 4;
const HOLD: Duration = Duration::from_millis(50);
const ACQUISITIONS: usize = 256;
const PROCESSES: usize = 4;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--worker") {
        // Child process: <url> <limit name> <tasks> <acquisitions>; prints requests sent.
        let client = Client::new(&args[2]).unwrap();
        let requests = run_tasks(
            &client,
            &args[3],
            args[4].parse().unwrap(),
            args[5].parse().unwrap(),
        )
        .await;
        println!("{requests}");
        return;
    }
    if args.iter().any(|a| a == "--bench" && args.len() == 2) {
        // `cargo test --benches` runs benches with --bench only in test mode; nothing to do.
    }
    let with_python = !args.iter().any(|a| a == "--no-python");
    let server = LocalServer::start().await.expect("local Prefect server");
    let url = server.api_url().to_string();
    println!(
        "Prefect {} at {url}",
        server.client().unwrap().server_version().await.unwrap()
    );
    println!(
        "scenario: {TASKS} tasks, limit {LIMIT}, hold {HOLD:?}, {ACQUISITIONS} acquisitions (ideal {:.1} s)\n",
        ideal()
    );
    println!(
        "| client | processes | wall (s) | × ideal | requests / acquisition | peak active_slots | left after |"
    );
    println!("|---|---|---|---|---|---|---|");

    let row = measure(&url, "rust-1", |name| {
        let url = url.clone();
        async move {
            let client = Client::new(&url).unwrap();
            run_tasks(&client, &name, TASKS, ACQUISITIONS).await
        }
    })
    .await;
    print_row("prefect-client (Rust)", 1, row);

    let row = measure(&url, "rust-4", |name| {
        let url = url.clone();
        async move {
            let exe = std::env::current_exe().unwrap();
            let children: Vec<_> = (0..PROCESSES)
                .map(|_| {
                    tokio::process::Command::new(&exe)
                        .args([
                            "--worker",
                            &url,
                            &name,
                            &(TASKS / PROCESSES).to_string(),
                            &(ACQUISITIONS / PROCESSES).to_string(),
                        ])
                        .output()
                })
                .collect();
            let mut requests = 0;
            for child in children {
                let out = child.await.unwrap();
                assert!(
                    out.status.success(),
                    "worker failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                requests += String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse::<u64>()
                    .unwrap();
            }
            requests
        }
    })
    .await;
    print_row("prefect-client (Rust)", PROCESSES, row);

    if with_python {
        let venv = prefect_client::local_server::ensure_venv().unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/python/contention.py");
        let row = measure(&url, "python-1", |name| {
            let (url, venv) = (url.clone(), venv.clone());
            async move {
                let out = tokio::process::Command::new(venv.join("bin/python"))
                    .args([
                        script,
                        &name,
                        &TASKS.to_string(),
                        &ACQUISITIONS.to_string(),
                        &HOLD.as_secs_f64().to_string(),
                    ])
                    .env("PREFECT_API_URL", &url)
                    .output()
                    .await
                    .unwrap();
                assert!(
                    out.status.success(),
                    "python failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .lines()
                    .last()
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
            }
        })
        .await;
        print_row("Prefect Python client (`concurrency()`)", 1, row);
    }
}

fn ideal() -> f64 {
    ACQUISITIONS as f64 * HOLD.as_secs_f64() / LIMIT as f64
}

struct Row {
    wall: Duration,
    requests: u64,
    peak: i64,
    left: i64,
}

fn print_row(client: &str, processes: usize, row: Row) {
    let requests = if row.requests == 0 {
        "n/a".to_string()
    } else {
        format!("{:.2}", row.requests as f64 / ACQUISITIONS as f64)
    };
    println!(
        "| {client} | {processes} | {:.2} | {:.2} | {requests} | {} | {} |",
        row.wall.as_secs_f64(),
        row.wall.as_secs_f64() / ideal(),
        row.peak,
        row.left
    );
}

/// Creates a fresh limit, runs `work` while polling the server's active_slots, reports.
async fn measure<F, Fut>(url: &str, label: &str, work: F) -> Row
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let admin = Client::new(url).unwrap();
    let name = format!("bench-{label}-{}", uuid::Uuid::new_v4().simple());
    admin
        .global_concurrency_limits()
        .create(&name, LIMIT)
        .await
        .unwrap();
    let peak = Arc::new(AtomicI64::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let poller = {
        let (peak, done, admin, name) = (peak.clone(), done.clone(), admin.clone(), name.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(limit) = admin.global_concurrency_limits().read(&name).await {
                    peak.fetch_max(limit.active_slots, Ordering::Relaxed);
                }
                tokio::select! {
                    _ = done.notified() => return,
                    _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                }
            }
        })
    };
    let started = Instant::now();
    let requests = work(name.clone()).await;
    let wall = started.elapsed();
    done.notify_one();
    poller.await.unwrap();
    // Leases handed on but not taken go back to the server after PARK_TIMEOUT: wait past it.
    tokio::time::sleep(prefect_client::concurrency::PARK_TIMEOUT + Duration::from_millis(500)).await;
    let left = admin
        .global_concurrency_limits()
        .read(&name)
        .await
        .unwrap()
        .active_slots;
    Row {
        wall,
        requests,
        peak: peak.load(Ordering::Relaxed),
        left,
    }
}

/// `tasks` tasks take `acquisitions` slots between them, each held for HOLD; returns requests sent.
async fn run_tasks(client: &Client, name: &str, tasks: usize, acquisitions: usize) -> u64 {
    let before = client.requests_sent();
    let per_task = acquisitions / tasks;
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let client = client.clone();
            let name = name.to_string();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    client
                        .concurrency([name.as_str()])
                        .strict(true)
                        // The hold starts once the slot is held (a Sleep created outside would not).
                        .run(async { tokio::time::sleep(HOLD).await })
                        .await
                        .expect("acquisition");
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    client.requests_sent() - before
}
