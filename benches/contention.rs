//! Contention benchmark against real Prefect servers started here (not run in CI; `cargo bench
//! --no-run` keeps it compiling).
//!
//!     cargo bench --bench contention                       # one server: SDK in 1 and 4 processes, Prefect's Python client
//!     cargo bench --bench contention -- --no-python        # SDK rows only
//!     cargo bench --bench contention -- --multi-replica    # PostgreSQL + Redis + 2 replicas behind HAProxy
//!     cargo bench --bench contention -- --fairness         # ten runs of two processes, equal load, 30 s: each one's share
//!     cargo bench --bench contention -- --scale            # 5,000 tasks, limit 10, 10 ms holds, 1 and 4 processes
//!     cargo bench --bench contention -- --tower            # 1,000 callers through ConcurrencyLayer, 1 and 4 processes
//!     cargo bench --bench contention -- --runs 3           # repeat each row (spread: min / median / max)
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

/// Scale: 5,000 tasks, one acquisition each, on a limit of 10 held 10 ms (ideal 5 s).
const SCALE: Scenario = Scenario {
    tasks: 5_000,
    limit: 10,
    hold: Duration::from_millis(10),
    acquisitions: 5_000,
};

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

/// What one child process reports: its count (acquisitions or calls), the requests it sent,
/// its CPU time and its peak resident memory.
#[derive(Debug, Default, Clone, Copy)]
struct Report {
    count: u64,
    requests: u64,
    cpu: Duration,
    rss_kib: u64,
}

impl Report {
    fn line(&self) -> String {
        format!(
            "{} {} {} {}",
            self.count,
            self.requests,
            self.cpu.as_micros(),
            self.rss_kib
        )
    }

    fn parse(line: &str) -> Report {
        let n: Vec<u64> = line.split_whitespace().map(|n| n.parse().unwrap()).collect();
        Report {
            count: n[0],
            requests: n[1],
            cpu: Duration::from_micros(n[2]),
            rss_kib: n[3],
        }
    }

    /// The processes' reports together: counts, requests and CPU summed, the largest RSS.
    fn sum(reports: &[Report]) -> Report {
        Report {
            count: reports.iter().map(|r| r.count).sum(),
            requests: reports.iter().map(|r| r.requests).sum(),
            cpu: reports.iter().map(|r| r.cpu).sum(),
            rss_kib: reports.iter().map(|r| r.rss_kib).max().unwrap_or(0),
        }
    }
}

/// This process's CPU time (user + system) and peak RSS, from /proc (zero elsewhere).
fn own_usage() -> (Duration, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are 14th and 15th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    // Linux reports in USER_HZ, 100 per second on every common build.
    (Duration::from_millis(ticks * 10), rss)
}

fn report(count: u64, requests: u64) -> Report {
    let (cpu, rss_kib) = own_usage();
    Report {
        count,
        requests,
        cpu,
        rss_kib,
    }
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> T
where
    T::Err: std::fmt::Debug,
{
    args[i].parse().unwrap()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--worker") => {
            // Child: <url> <limit name> <tasks> <acquisitions> <hold ms>.
            let client = Client::new(&args[2]).unwrap();
            let scenario = Scenario {
                tasks: arg(&args, 4),
                acquisitions: arg(&args, 5),
                hold: Duration::from_millis(arg(&args, 6)),
                limit: 0,
            };
            let requests = run_tasks(&client, &args[3], scenario).await;
            println!("{}", report(scenario.acquisitions as u64, requests).line());
            return;
        }
        Some(mode @ ("--timed-worker" | "--tower-worker")) => {
            // Child: <url> <limit name> <tasks or callers> <seconds> <hold ms>; acquisitions
            // of its own, or calls through ConcurrencyLayer.
            let client = Client::new(&args[2]).unwrap();
            let (name, tasks) = (&args[3], arg(&args, 4));
            let run = Duration::from_secs(arg(&args, 5));
            let hold = Duration::from_millis(arg(&args, 6));
            let count = if mode == "--timed-worker" {
                run_for(&client, name, tasks, run, hold).await
            } else {
                tower_calls(&client, name, tasks, run, hold).await
            };
            println!("{}", report(count, client.requests_sent()).line());
            return;
        }
        _ => {}
    }
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .map_or(0, |i| arg(&args, i + 1));
    if args.iter().any(|a| a == "--fairness") {
        fairness(if runs == 0 { 10 } else { runs }).await;
        return;
    }
    let runs = runs.max(1);
    let with_python = !args.iter().any(|a| a == "--no-python");
    if args.iter().any(|a| a == "--tower") {
        tower(runs).await;
        return;
    }
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
        let scenario = if args.iter().any(|a| a == "--scale") {
            SCALE
        } else {
            ONE_SERVER
        };
        (server.api_url().to_string(), scenario, Some(server), None)
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
        "| client | processes | wall (s) | × ideal | requests / acquisition | client CPU / acquisition | peak RSS | peak active_slots | left after |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");

    let mut spreads = Vec::new();
    for processes in [1, PROCESSES.min(scenario.tasks)] {
        let mut ratios = Vec::new();
        for run in 0..runs {
            let row = measure(&url, &format!("rust-{processes}-{run}"), scenario, |name| {
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
                    Report::sum(&run_children(processes, &args).await)
                }
            })
            .await;
            ratios.push(row.wall.as_secs_f64() / scenario.ideal());
            print_row("prefect-client (Rust)", processes, scenario, &row);
        }
        spreads.push((processes, ratios));
    }

    if with_python {
        let venv = prefect_testkit::ensure_venv().unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/python/contention.py");
        // Python's client at 5,000 waiters would take many minutes: it gets 60 s, and its
        // wall time is projected from the acquisitions it made.
        let cap = if scenario.tasks > 1_000 { 60.0 } else { 0.0 };
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
                        &cap.to_string(),
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
                let stdout = String::from_utf8_lossy(&out.stdout);
                Report::parse(stdout.trim().lines().last().unwrap_or("0 0 0 0"))
            }
        })
        .await;
        print_row("Prefect Python client (`concurrency()`)", 1, scenario, &row);
    }
    if runs > 1 {
        println!("\nspread of × ideal over {runs} runs (min / median / max):");
        for (processes, ratios) in spreads {
            println!("- {processes} process(es): {}", spread(ratios));
        }
    }
}

/// min / median / max of `values`.
fn spread(mut values: Vec<f64>) -> String {
    values.sort_by(f64::total_cmp);
    format!(
        "{:.2} / {:.2} / {:.2}",
        values[0],
        values[values.len() / 2],
        values[values.len() - 1]
    )
}

struct Row {
    wall: Duration,
    report: Report,
    peak: i64,
    left: i64,
}

fn print_row(client: &str, processes: usize, scenario: Scenario, row: &Row) {
    let done = row.report.count.max(1) as f64;
    // A capped run (Python at scale) made fewer acquisitions: project its wall time.
    let projected = row.wall.as_secs_f64() * scenario.acquisitions as f64 / done;
    let wall = if row.report.count < scenario.acquisitions as u64 {
        format!(
            "{projected:.1} (projected: {} done in {:.1})",
            row.report.count,
            row.wall.as_secs_f64()
        )
    } else {
        format!("{:.2}", row.wall.as_secs_f64())
    };
    println!(
        "| {client} | {processes} | {wall} | {:.2} | {:.2} | {:.3} ms | {:.1} MiB | {} | {} |",
        projected / scenario.ideal(),
        row.report.requests as f64 / done,
        row.report.cpu.as_secs_f64() * 1000.0 / done,
        row.report.rss_kib as f64 / 1024.0,
        row.peak,
        row.left
    );
}

/// Creates a fresh limit, runs `work` while polling the server's active_slots, reports.
async fn measure<F, Fut>(url: &str, label: &str, scenario: Scenario, work: F) -> Row
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Report>,
{
    let admin = Client::new(url).unwrap();
    let name = format!("bench-{label}-{}", uuid::Uuid::new_v4().simple());
    admin
        .global_concurrency_limits()
        .create(&name, scenario.limit)
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
    let report = work(name.clone()).await;
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
        report,
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
                        .hold(async { tokio::time::sleep(hold).await })
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

/// Calls through [`ConcurrencyLayer`]: a service behind a limit of [`TOWER_LIMIT`] whose calls
/// each take [`TOWER_HOLD`], `callers` at once, one and four processes; calls per second
/// against the ideal (limit / hold).
async fn tower(runs: usize) {
    let server = LocalServer::start().await.expect("local Prefect server");
    let url = server.api_url().to_string();
    let admin = Client::new(&url).unwrap();
    let ideal = TOWER_LIMIT as f64 / TOWER_HOLD.as_secs_f64();
    println!(
        "tower: {TOWER_CALLERS} callers, ConcurrencyLayer on a limit of {TOWER_LIMIT}, {TOWER_HOLD:?} per call, {} s (ideal {ideal:.0} calls/s)\n",
        TOWER_RUN.as_secs()
    );
    println!("| processes | calls/s | % of ideal | requests / call | client CPU / call | peak RSS |");
    println!("|---|---|---|---|---|---|");
    let mut spreads = Vec::new();
    for processes in [1, PROCESSES] {
        let mut shares = Vec::new();
        for _ in 0..runs {
            let name = format!("bench-tower-{}", uuid::Uuid::new_v4().simple());
            admin
                .global_concurrency_limits()
                .create(&name, TOWER_LIMIT)
                .await
                .unwrap();
            let args = [
                "--tower-worker".to_string(),
                url.clone(),
                name,
                (TOWER_CALLERS / processes).to_string(),
                TOWER_RUN.as_secs().to_string(),
                TOWER_HOLD.as_millis().to_string(),
            ];
            let total = Report::sum(&run_children(processes, &args).await);
            let per_second = total.count as f64 / TOWER_RUN.as_secs_f64();
            shares.push(per_second / ideal);
            let calls = total.count.max(1) as f64;
            println!(
                "| {processes} | {per_second:.0} | {:.1} % | {:.3} | {:.3} ms | {:.1} MiB |",
                per_second * 100.0 / ideal,
                total.requests as f64 / calls,
                total.cpu.as_secs_f64() * 1000.0 / calls,
                total.rss_kib as f64 / 1024.0
            );
        }
        spreads.push((processes, shares));
    }
    if runs > 1 {
        println!("\nspread of the share of ideal over {runs} runs (min / median / max):");
        for (processes, shares) in spreads {
            println!("- {processes} process(es): {}", spread(shares));
        }
    }
}

const TOWER_LIMIT: i64 = 10;
const TOWER_HOLD: Duration = Duration::from_millis(10);
const TOWER_CALLERS: usize = 1_000;
const TOWER_RUN: Duration = Duration::from_secs(10);

/// `callers` tasks call a service behind a [`ConcurrencyLayer`] on `name` until `run` has
/// passed; returns the calls made.
async fn tower_calls(client: &Client, name: &str, callers: usize, run: Duration, hold: Duration) -> u64 {
    use prefect_client::concurrency::ConcurrencyLayer;
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    let service = ServiceBuilder::new()
        .layer(ConcurrencyLayer::new(client.concurrency([name])))
        .service(service_fn(move |()| async move {
            tokio::time::sleep(hold).await;
            Ok::<_, std::convert::Infallible>(())
        }));
    let end = Instant::now() + run;
    let handles: Vec<_> = (0..callers)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move {
                let mut calls = 0u64;
                loop {
                    let left = end.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return calls;
                    }
                    // A call still waiting at the end does not count.
                    match tokio::time::timeout(left, service.clone().oneshot(())).await {
                        Ok(Ok(())) => calls += 1,
                        Ok(Err(e)) => panic!("call: {e}"),
                        Err(_) => return calls,
                    }
                }
            })
        })
        .collect();
    let mut total = 0;
    for handle in handles {
        total += handle.await.unwrap();
    }
    total
}

/// Two processes with equal load contend for one limit for [`FAIRNESS_RUN`], `runs` times;
/// prints how many acquisitions each got. Target: each 40–60 % in every run.
async fn fairness(runs: usize) {
    const TASKS: usize = 16;
    const LIMIT: i64 = 4;
    const HOLD: Duration = Duration::from_millis(50);
    let server = LocalServer::start().await.expect("local Prefect server");
    let url = server.api_url().to_string();
    let admin = Client::new(&url).unwrap();
    println!(
        "fairness: {runs} runs of 2 processes × {TASKS} tasks, limit {LIMIT}, hold {HOLD:?}, {} s (at most {:.0} acquisitions)\n",
        FAIRNESS_RUN.as_secs(),
        FAIRNESS_RUN.as_secs_f64() / HOLD.as_secs_f64() * LIMIT as f64
    );
    println!(
        "| run | process 1 | process 2 | share of process 1 | × ideal time per acquisition | requests / acquisition |"
    );
    println!("|---|---|---|---|---|---|");
    let mut shares = Vec::new();
    for run in 1..=runs {
        let name = format!("bench-fairness-{}", uuid::Uuid::new_v4().simple());
        admin
            .global_concurrency_limits()
            .create(&name, LIMIT)
            .await
            .unwrap();
        let args = [
            "--timed-worker".to_string(),
            url.clone(),
            name,
            TASKS.to_string(),
            FAIRNESS_RUN.as_secs().to_string(),
            HOLD.as_millis().to_string(),
        ];
        let reports = run_children(2, &args).await;
        let total = Report::sum(&reports);
        let share = reports[0].count as f64 * 100.0 / total.count.max(1) as f64;
        shares.push(share);
        println!(
            "| {run} | {} | {} | {share:.1} % | {:.2} | {:.2} |",
            reports[0].count,
            reports[1].count,
            FAIRNESS_RUN.as_secs_f64() / (total.count as f64 * HOLD.as_secs_f64() / LIMIT as f64),
            total.requests as f64 / total.count.max(1) as f64
        );
    }
    let worst = shares.iter().map(|s| (s - 50.0).abs()).fold(0.0, f64::max);
    println!(
        "\nshare of process 1 over {runs} runs (min / median / max): {} %; furthest from 50 %: {worst:.1} points",
        spread(shares)
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
                        .hold(async { tokio::time::sleep(hold).await })
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
/// what each reported.
async fn run_children(count: usize, args: &[String]) -> Vec<Report> {
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..count)
        .map(|_| tokio::process::Command::new(&exe).args(args).output())
        .collect();
    let mut reports = Vec::new();
    for child in children {
        let out = child.await.unwrap();
        assert!(
            out.status.success(),
            "worker failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        reports.push(Report::parse(String::from_utf8_lossy(&out.stdout).trim()));
    }
    reports
}
