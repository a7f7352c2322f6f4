//! A process that uses slots of a global concurrency limit, started by tests to act as another
//! program on the same limit. Warnings of the SDK (failed releases, lost leases, repeated lease
//! requests) go to stdout, which the test reads.
//!
//! ```text
//! prefect-testkit-worker contend <api-url> <limit> [--tasks N] [--each N] [--hold-ms N]
//!                                [--lease-secs N] [--timeout-secs N]
//!     N tasks each run `each` holds of one slot for hold-ms; prints `ACQUISITIONS <count>`.
//! prefect-testkit-worker hold <api-url> <limit> [--lease-secs N]
//!     takes one slot, prints `HOLDING`, and holds it for 10 minutes (until killed).
//! prefect-testkit-worker end-ok|end-err|end-panic|end-detached|end-exit <api-url> <limit>
//!                        [--tasks N] [--current-thread 1]
//!     takes N slots (default 2) under guards, prints `HOLDING`, then ends the program while
//!     holding them: main returns Ok, returns Err, panics, returns with the guards in spawned
//!     tasks it does not wait for, or calls `std::process::exit`. The runtime is built as
//!     `#[tokio::main]` builds it (multi-thread, or current-thread with `--current-thread 1`).
//! prefect-testkit-worker flow-heartbeat <api-url> <flow-name>
//!     runs a flow run with heartbeats every second, prints `RUNNING <flow-run-id>`, and runs
//!     until killed.
//! ```

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use prefect_client::Client;

const USAGE: &str = "usage: prefect-testkit-worker contend|hold|end-ok|end-err|end-panic|end-detached|end-exit|flow-heartbeat \
                     <api-url> <limit> [--tasks N] [--each N] [--hold-ms N] [--lease-secs N] [--timeout-secs N] \
                     [--current-thread 1]";

const COMMANDS: [&str; 8] = [
    "flow-heartbeat",
    "contend",
    "hold",
    "end-ok",
    "end-err",
    "end-panic",
    "end-detached",
    "end-exit",
];

struct Args {
    command: String,
    url: String,
    limit: String,
    options: HashMap<String, u64>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let [command, url, limit, rest @ ..] = args else {
        return Err("missing arguments".into());
    };
    if !COMMANDS.contains(&command.as_str()) {
        return Err(format!("unknown command {command:?}"));
    }
    let mut options = HashMap::new();
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        let name = flag
            .strip_prefix("--")
            .filter(|n| {
                [
                    "tasks",
                    "each",
                    "hold-ms",
                    "lease-secs",
                    "timeout-secs",
                    "current-thread",
                ]
                .contains(n)
            })
            .ok_or_else(|| format!("unknown option {flag:?}"))?;
        let value = rest
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| format!("{flag} needs a whole number"))?;
        options.insert(name.to_string(), value);
    }
    Ok(Args {
        command: command.clone(),
        url: url.clone(),
        limit: limit.clone(),
        options,
    })
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(&argv) {
        Ok(args) => args,
        Err(problem) => {
            eprintln!("{problem}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(std::io::stdout)
        .try_init();
    // What `#[tokio::main]` expands to: the runtime is dropped when main's body returns.
    let runtime = if args.options.get("current-thread") == Some(&1) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    .enable_all()
    .build()
    .expect("a Tokio runtime");
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let client = match Client::new(&args.url) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let result = match args.command.as_str() {
        "hold" => hold(&client, &args).await,
        "contend" => contend(&client, &args).await,
        "flow-heartbeat" => flow_heartbeat(&client, &args).await,
        ending => return end(&client, &args, ending).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("WORKER FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A flow run that beats every second and never ends on its own.
async fn flow_heartbeat(client: &Client, args: &Args) -> Result<(), prefect_client::Error> {
    let report = client
        .new_flow_run(&args.limit)
        .heartbeat(Duration::from_secs(1))
        .run(|ctx| async move {
            println!("RUNNING {}", ctx.flow_run_id());
            std::future::pending::<Result<(), String>>().await
        })
        .await?;
    println!("ENDED {:?}", report.outcome);
    Ok(())
}

/// Ends the program in the way `how` names while guards hold slots.
async fn end(client: &Client, args: &Args, how: &str) -> ExitCode {
    let count = args.options.get("tasks").copied().unwrap_or(2);
    let mut guards = Vec::new();
    for _ in 0..count {
        match acquisition(client, args).acquire().await {
            Ok(guard) => guards.push(guard),
            Err(e) => {
                println!("WORKER FAILED: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("HOLDING");
    match how {
        "end-ok" => ExitCode::SUCCESS,
        "end-err" => {
            let failed: Result<(), &str> = Err("the work failed");
            if let Err(e) = failed {
                println!("ENDING WITH ERROR: {e}");
            }
            ExitCode::FAILURE
        }
        "end-panic" => panic!("the work panicked while holding {} guards", guards.len()),
        "end-detached" => {
            for guard in guards.drain(..) {
                tokio::spawn(async move {
                    let _guard = guard;
                    std::future::pending::<()>().await
                });
            }
            tokio::task::yield_now().await;
            ExitCode::SUCCESS
        }
        _ => std::process::exit(3),
    }
}

fn acquisition(client: &Client, args: &Args) -> prefect_client::concurrency::Acquire {
    let mut acquire = client.concurrency([args.limit.as_str()]);
    if let Some(&secs) = args.options.get("lease-secs") {
        acquire = acquire.lease_duration(Duration::from_secs(secs));
    }
    if let Some(&secs) = args.options.get("timeout-secs") {
        acquire = acquire.timeout(Duration::from_secs(secs));
    }
    acquire
}

async fn contend(client: &Client, args: &Args) -> Result<(), prefect_client::Error> {
    let option = |name: &str, default: u64| args.options.get(name).copied().unwrap_or(default);
    let (tasks, each) = (option("tasks", 8), option("each", 4));
    let hold = Duration::from_millis(option("hold-ms", 30));
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let acquire = acquisition(client, args);
            tokio::spawn(async move {
                for _ in 0..each {
                    // The hold starts once the slot is held.
                    acquire
                        .clone()
                        .hold(async { tokio::time::sleep(hold).await })
                        .await?;
                }
                Ok::<u64, prefect_client::Error>(each)
            })
        })
        .collect();
    let mut done = 0;
    let mut failure = None;
    for handle in handles {
        match handle.await {
            Ok(Ok(n)) => done += n,
            Ok(Err(e)) => failure = Some(e),
            Err(panic) => println!("WORKER TASK PANICKED: {panic}"),
        }
    }
    println!("ACQUISITIONS {done}");
    failure.map_or(Ok(()), Err)
}

async fn hold(client: &Client, args: &Args) -> Result<(), prefect_client::Error> {
    let _guard = acquisition(client, args).acquire().await?;
    println!("HOLDING");
    tokio::time::sleep(Duration::from_secs(600)).await;
    Ok(())
}
