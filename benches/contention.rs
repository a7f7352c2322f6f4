//! Contention benchmark against real Prefect servers started here (not run in CI; `cargo bench
//! --no-run` keeps it compiling).
//!
//!     cargo bench --bench contention                       # one server: SDK in 1 and 4 processes, Prefect's Python client
//!     cargo bench --bench contention -- --no-python        # SDK rows only
//!     cargo bench --bench contention -- --multi-replica    # PostgreSQL + Redis + 2 replicas behind HAProxy
//!     cargo bench --bench contention -- --fairness         # two processes, equal load, 30 s: each one's share
//!
//! One server: 64 tasks share a global limit of 4; each acquisition holds its slot 50 ms; 256
//! acquisitions in all (ideal 256 × 0.05 / 4 = 3.2 s). Multi-replica: 16 tasks, limit 2, hold
//! 50 ms, 64 acquisitions through the load balancer (ideal 1.6 s). Reports wall time, HTTP
//! requests per acquisition, the peak of the server's `active_slots` (polled every 10 ms) and
//! the slots left.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use prefect_client::Client;
use prefect_testkit::{LocalServer, MultiReplicaServer};

/// What is measured: `tasks` tasks take `acquisitions` slots of a limit of `limit` between them.
#[derive(Clone, Copy)]
struct Scenario {
    tasks: usize,
    limit: i64,
    hold: Duration,
    acquisitions: usize,
}

const ONE_SERVER: Scenario = Scenario {
    tasks: 64,
    limit: 4,
    hold: Duration::from_millis(50),
    acquisitions: 256,
};

const MULTI_REPLICA: Scenario = Scenario {
    tasks: 16,
    limit: 2,
    hold: Duration::from_millis(50),
    acquisitions: 64,
};

impl Scenario {
    fn ideal(&self) -> f64 {
        self.acquisitions as f64 * self.hold.as_secs_f64() / self.limit as f64
    }
}

const PROCESSES: usize = 4;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--worker") {
        // Child process: <url> <limit name> <tasks> <acquisitions> <hold ms>; prints requests sent.
        let client = Client::new(&args[2]).unwrap();
        let scenario = Scenario {
            tasks: args[4].parse().unwrap(),
            acquisitions: args[5].parse().unwrap(),
            hold: Duration::from_millis(args[6].parse().unwrap()),
            limit: 0,
        };
        println!("{}", run_tasks(&client, &args[3], scenario).await);
        return;
    }
    if args.get(1).map(String::as_str) == Some("--timed-worker") {
        // Child process: <url> <limit name> <tasks> <seconds> <hold ms>; prints acquisitions.
        let client = Client::new(&args[2]).unwrap();
        let (tasks, seconds, hold) = (
            args[4].parse().unwrap(),
            args[5].parse().unwrap(),
            Duration::from_millis(args[6].parse().unwrap()),
        );
        println!(
            "{}",
            run_for(&client, &args[3], tasks, Duration::from_secs(seconds), hold).await
        );
        return;
    }
    if args.iter().any(|a| a == "--fairness") {
        fairness().await;
        return;
    }
    let with_python = !args.iter().any(|a| a == "--no-python");
    // Keep whichever server runs alive until the end.
    let (url, scenario, _one, _many) = if args.iter().any(|a| a == "--multi-replica") {
        let stack = MultiReplicaServer::start().await.expect("multi-replica layout");
        println!(
            "layout: PostgreSQL + Redis + {} replicas behind HAProxy",
            stack.replica_urls().len()
        );
        (stack.api_url().to_string(), MULTI_REPLICA, None, Some(stack))
    } else {
        let server = LocalServer::start().await.expect("local Prefect server");
        (server.api_url().to_string(), ONE_SERVER, Some(server), None)
    };
    println!(
        "Prefect {} at {url}",
        Client::new(&url).unwrap().server_version().await.unwrap()
    );
    println!(
        "scenario: {} tasks, limit {}, hold {:?}, {} acquisitions (ideal {:.1} s)\n",
        scenario.tasks,
        scenario.limit,
        scenario.hold,
        scenario.acquisitions,
        scenario.ideal()
    );
    println!(
        "| client | processes | wall (s) | × ideal | requests / acquisition | peak active_slots | left after |"
    );
    println!("|---|---|---|---|---|---|---|");

    let row = measure(&url, "rust-1", scenario, |name| {
        let url = url.clone();
        async move {
            let client = Client::new(&url).unwrap();
            run_tasks(&client, &name, scenario).await
        }
    })
    .await;
    print_row("prefect-client (Rust)", 1, scenario, row);

    let processes = PROCESSES.min(scenario.tasks);
    let row = measure(&url, "rust-n", scenario, |name| {
        let url = url.clone();
        async move {
            let args = [
                "--worker".to_string(),
                url,
                name,
                (scenario.tasks / processes).to_string(),
                (scenario.acquisitions / processes).to_string(),
                scenario.hold.as_millis().to_string(),
            ];
            run_children(processes, &args).await.iter().sum::<u64>()
        }
    })
    .await;
    print_row("prefect-client (Rust)", processes, scenario, row);

    if with_python {
        let venv = prefect_testkit::ensure_venv().unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/python/contention.py");
        let row = measure(&url, "python-1", scenario, |name| {
            let (url, venv) = (url.clone(), venv.clone());
            async move {
                let out = tokio::process::Command::new(venv.join("bin/python"))
                    .args([
                        script,
                        &name,
                        &scenario.tasks.to_string(),
                        &scenario.acquisitions.to_string(),
                        &scenario.hold.as_secs_f64().to_string(),
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
        print_row("Prefect Python client (`concurrency()`)", 1, scenario, row);
    }
}

struct Row {
    wall: Duration,
    requests: u64,
    peak: i64,
    left: i64,
}

fn print_row(client: &str, processes: usize, scenario: Scenario, row: Row) {
    let requests = if row.requests == 0 {
        "n/a".to_string()
    } else {
        format!("{:.2}", row.requests as f64 / scenario.acquisitions as f64)
    };
    println!(
        "| {client} | {processes} | {:.2} | {:.2} | {requests} | {} | {} |",
        row.wall.as_secs_f64(),
        row.wall.as_secs_f64() / scenario.ideal(),
        row.peak,
        row.left
    );
}

/// Creates a fresh limit, runs `work` while polling the server's active_slots, reports.
async fn measure<F, Fut>(url: &str, label: &str, scenario: Scenario, work: F) -> Row
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let admin = Client::new(url).unwrap();
    let name = format!("bench-{label}-{}", uuid::Uuid::new_v4().simple());
    admin
        .global_concurrency_limits()
        .create(&name, scenario.limit)
        .send()
        .await
        .unwrap();
    let peak = Arc::new(AtomicI64::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let poller = {
        let (peak, done, admin, name) = (peak.clone(), done.clone(), admin.clone(), name.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(limit) = admin.global_concurrency_limits().get_by_name(&name).await {
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
    tokio::time::sleep(Duration::from_millis(750)).await;
    let left = admin
        .global_concurrency_limits()
        .get_by_name(&name)
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

/// The scenario's tasks take its acquisitions between them, each held for its hold; returns
/// the requests sent.
async fn run_tasks(client: &Client, name: &str, scenario: Scenario) -> u64 {
    let before = client.requests_sent();
    let per_task = scenario.acquisitions / scenario.tasks;
    let hold = scenario.hold;
    let handles: Vec<_> = (0..scenario.tasks)
        .map(|_| {
            let client = client.clone();
            let name = name.to_string();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    client
                        .concurrency([name.as_str()])
                        // The hold starts once the slot is held (a Sleep created outside would not).
                        .run(async { tokio::time::sleep(hold).await })
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

/// Two processes with equal load contend for one limit for [`FAIRNESS_RUN`]; prints how many
/// acquisitions each got. Target: each 40–60 %.
async fn fairness() {
    const TASKS: usize = 16;
    const LIMIT: i64 = 4;
    const HOLD: Duration = Duration::from_millis(50);
    let server = LocalServer::start().await.expect("local Prefect server");
    let url = server.api_url().to_string();
    let admin = Client::new(&url).unwrap();
    let name = format!("bench-fairness-{}", uuid::Uuid::new_v4().simple());
    admin
        .global_concurrency_limits()
        .create(&name, LIMIT)
        .send()
        .await
        .unwrap();
    println!(
        "fairness: 2 processes × {TASKS} tasks, limit {LIMIT}, hold {HOLD:?}, {} s (at most {:.0} acquisitions)\n",
        FAIRNESS_RUN.as_secs(),
        FAIRNESS_RUN.as_secs_f64() / HOLD.as_secs_f64() * LIMIT as f64
    );
    let args = [
        "--timed-worker".to_string(),
        url,
        name,
        TASKS.to_string(),
        FAIRNESS_RUN.as_secs().to_string(),
        HOLD.as_millis().to_string(),
    ];
    let counts = run_children(2, &args).await;
    let total: u64 = counts.iter().sum();
    println!("| process | acquisitions | share |");
    println!("|---|---|---|");
    for (i, count) in counts.iter().enumerate() {
        println!(
            "| {} | {count} | {:.1} % |",
            i + 1,
            *count as f64 * 100.0 / total as f64
        );
    }
    println!(
        "| both | {total} | {:.2} × ideal time per acquisition |",
        FAIRNESS_RUN.as_secs_f64() / (total as f64 * HOLD.as_secs_f64() / LIMIT as f64)
    );
}

/// How long the fairness run lasts.
const FAIRNESS_RUN: Duration = Duration::from_secs(30);

/// `tasks` tasks take slots of `name`, each held for `hold`, until `run` has passed; returns
/// the acquisitions made.
async fn run_for(client: &Client, name: &str, tasks: usize, run: Duration, hold: Duration) -> u64 {
    let end = Instant::now() + run;
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let client = client.clone();
            let name = name.to_string();
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < end {
                    let left = end.saturating_duration_since(Instant::now());
                    match client
                        .concurrency([name.as_str()])
                        .timeout(left)
                        .run(async { tokio::time::sleep(hold).await })
                        .await
                    {
                        Ok(()) => done += 1,
                        Err(e) if e.is_timeout() => break,
                        Err(e) => panic!("acquisition: {e}"),
                    }
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for handle in handles {
        total += handle.await.unwrap();
    }
    total
}

/// Runs `count` copies of this benchmark as child processes with `args`, all at once; returns
/// the number each printed.
async fn run_children(count: usize, args: &[String]) -> Vec<u64> {
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..count)
        .map(|_| tokio::process::Command::new(&exe).args(args).output())
        .collect();
    let mut numbers = Vec::new();
    for child in children {
        let out = child.await.unwrap();
        assert!(
            out.status.success(),
            "worker failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        numbers.push(
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<u64>()
                .unwrap(),
        );
    }
    numbers
}
