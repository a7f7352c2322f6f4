//! This SDK against Prefect's own Python client on the same real local server (not run in CI).
//!
//!     cargo bench --bench read_throughput
//!
//! Both read one tag concurrency limit (`read_concurrency_limit_by_tag`) many times, first one
//! request at a time, then with 32 in flight; rounds alternate between the two clients. Reports
//! ops/s and client CPU per op (this process's user + system time for the SDK, Python's
//! `time.process_time()` for Python; the server's CPU is not counted in either).

use std::time::{Duration, Instant};

use prefect_client::Client;
use prefect_testkit::LocalServer;

const ROUNDS: usize = 3;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let server = LocalServer::start().await.expect("local Prefect server");
    let venv = prefect_testkit::ensure_venv().unwrap();
    let client = Client::new(server.api_url()).unwrap();
    client.concurrency_limits().create("bench-read", 5).await.unwrap();
    println!(
        "Prefect 3.8.8 at {}; {ROUNDS} alternating rounds per mode\n",
        server.api_url()
    );
    println!("| client | in flight | ops/s (median) | client CPU ms/op (median) |");
    println!("|---|---|---|---|");
    for (in_flight, requests_rust, requests_python) in [(1usize, 1500usize, 600usize), (32, 3000, 1500)] {
        let (mut rust, mut python) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            rust.push(run_rust(&client, requests_rust, in_flight).await);
            python.push(run_python(&venv, server.api_url(), requests_python, in_flight).await);
        }
        let (r_ops, r_cpu) = medians(&rust);
        let (p_ops, p_cpu) = medians(&python);
        println!("| prefect-client (Rust) | {in_flight} | {r_ops:.0} | {r_cpu:.3} |");
        println!("| Prefect Python client | {in_flight} | {p_ops:.0} | {p_cpu:.3} |");
        println!(
            "| ratio Rust / Python | {in_flight} | {:.2}× | 1/{:.1} |",
            r_ops / p_ops,
            p_cpu / r_cpu
        );
    }
}

fn medians(samples: &[(f64, f64)]) -> (f64, f64) {
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    (
        median(samples.iter().map(|s| s.0).collect()),
        median(samples.iter().map(|s| s.1).collect()),
    )
}

async fn run_rust(client: &Client, requests: usize, in_flight: usize) -> (f64, f64) {
    for _ in 0..20 {
        client
            .concurrency_limits()
            .get_by_tag("bench-read")
            .await
            .unwrap();
    }
    let cpu = cpu_time();
    let started = Instant::now();
    if in_flight == 1 {
        for _ in 0..requests {
            client
                .concurrency_limits()
                .get_by_tag("bench-read")
                .await
                .unwrap();
        }
    } else {
        let per_worker = requests / in_flight;
        let workers: Vec<_> = (0..in_flight)
            .map(|_| {
                let client = client.clone();
                tokio::spawn(async move {
                    for _ in 0..per_worker {
                        client
                            .concurrency_limits()
                            .get_by_tag("bench-read")
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await.unwrap();
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_time().saturating_sub(cpu).as_secs_f64();
    (requests as f64 / wall, cpu * 1000.0 / requests as f64)
}

async fn run_python(venv: &std::path::Path, url: &str, requests: usize, in_flight: usize) -> (f64, f64) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/python/read_throughput.py");
    let out = tokio::process::Command::new(venv.join("bin/python"))
        .args([
            script,
            "bench-read",
            &requests.to_string(),
            &in_flight.to_string(),
        ])
        .env("PREFECT_API_URL", url)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut fields = text
        .trim()
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .map(|f| f.parse::<f64>().unwrap());
    (fields.next().unwrap(), fields.next().unwrap())
}

/// User + system CPU time of this process.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}
