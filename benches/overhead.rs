//! Client overhead with the server out of the way (not run in CI).
//!
//!     cargo bench --bench overhead
//!
//! A loopback stub (a child process, so its CPU is not counted) answers every request with the
//! same ConcurrencyLimit body. The same read (`GET /concurrency_limits/tag/{tag}`) is made
//! sequentially by bare reqwest + serde, the raw generated client, and the wrapper; rounds
//! alternate between them to share the machine's noise. Reports mean latency and client CPU per
//! request (user + system time of this process, from /proc/self/stat).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use prefect_client::{Client, types};

const BODY: &str = r#"{"id":"5f5c3a8e-8a1e-4c1c-9a4e-0d3c1a2b3c4d","created":"2026-11-24T10:00:00.000000Z","updated":"2026-11-24T10:00:00.000000Z","tag":"bench","concurrency_limit":5,"active_slots":["0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"]}"#;
const REQUESTS_PER_ROUND: usize = 4_000;
const ROUNDS: usize = 5;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--stub") {
        return stub();
    }
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--stub")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut port = String::new();
    let mut stdout = child.stdout.take().unwrap();
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        port.push(byte[0] as char);
    }
    let url = format!("http://127.0.0.1:{}/api", port.trim());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(measure(&url));
    let _ = child.kill();
    let _ = child.wait();
}

async fn measure(url: &str) {
    prefect_client::install_tls_provider();
    let http = reqwest::Client::new();
    // The generated client with the SDK's transport hooks (headers, retries, tracing span), as
    // `client.raw()` gives it: what the wrapper adds on top is validation and error mapping.
    let raw = Client::new(url).unwrap().raw().clone();
    let wrapper = Client::new(url).unwrap();
    let bare_url = format!("{url}/concurrency_limits/tag/bench");
    let names = ["bare reqwest + serde", "raw generated client", "wrapper (Client)"];
    let mut totals = [(Duration::ZERO, Duration::ZERO); 3];
    for round in 0..=ROUNDS {
        for (i, total) in totals.iter_mut().enumerate() {
            let (wall, cpu) = match i {
                0 => {
                    timed(|| async {
                        let response = http.get(&bare_url).send().await.unwrap();
                        let bytes = response.bytes().await.unwrap();
                        serde_json::from_slice::<types::ConcurrencyLimit>(&bytes).unwrap()
                    })
                    .await
                }
                1 => {
                    timed(|| async {
                        raw.read_concurrency_limit_by_tag("bench")
                            .await
                            .unwrap()
                            .into_inner()
                    })
                    .await
                }
                _ => {
                    timed(|| async { wrapper.concurrency_limits().get_by_tag("bench").await.unwrap() }).await
                }
            };
            if round > 0 {
                // Round 0 warms connections and caches.
                total.0 += wall;
                total.1 += cpu;
            }
        }
    }
    let n = (REQUESTS_PER_ROUND * ROUNDS) as f64;
    let per = |d: Duration| d.as_secs_f64() * 1e6 / n;
    println!(
        "{} sequential requests each, {ROUNDS} alternating rounds\n",
        REQUESTS_PER_ROUND * ROUNDS
    );
    println!("| client | latency (µs/request) | client CPU (µs/request) | CPU vs raw generated |");
    println!("|---|---|---|---|");
    for (name, (wall, cpu)) in names.iter().zip(totals) {
        println!(
            "| {name} | {:.1} | {:.1} | {:.2}× |",
            per(wall),
            per(cpu),
            cpu.as_secs_f64() / totals[1].1.as_secs_f64()
        );
    }
    println!(
        "\nwall time wrapper / raw generated: {:.3}×",
        totals[2].0.as_secs_f64() / totals[1].0.as_secs_f64()
    );
}

async fn timed<F, Fut, T>(make: F) -> (Duration, Duration)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let cpu = cpu_time();
    let started = Instant::now();
    for _ in 0..REQUESTS_PER_ROUND {
        std::hint::black_box(make().await);
    }
    (started.elapsed(), cpu_time().saturating_sub(cpu))
}

/// User + system CPU time of this process.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

/// A keep-alive HTTP/1.1 stub answering every request with BODY.
fn stub() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("{}", listener.local_addr().unwrap().port());
    std::io::stdout().flush().unwrap();
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let response = response.clone();
        std::thread::spawn(move || {
            let _ = stream.set_nodelay(true);
            let mut buffer = [0u8; 8192];
            let mut pending = Vec::new();
            loop {
                let Ok(n) = stream.read(&mut buffer) else { return };
                if n == 0 {
                    return;
                }
                pending.extend_from_slice(&buffer[..n]);
                while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                    pending.drain(..end + 4);
                    if stream.write_all(response.as_bytes()).is_err() {
                        return;
                    }
                }
            }
        });
    }
}
