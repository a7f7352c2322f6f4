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
//! ```

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use prefect_client::Client;

const USAGE: &str = "usage: prefect-testkit-worker contend|hold <api-url> <limit> [--tasks N] [--each N] \
                     [--hold-ms N] [--lease-secs N] [--timeout-secs N]";

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
    if !matches!(command.as_str(), "contend" | "hold") {
        return Err(format!("unknown command {command:?}"));
    }
    let mut options = HashMap::new();
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        let name = flag
            .strip_prefix("--")
            .filter(|n| ["tasks", "each", "hold-ms", "lease-secs", "timeout-secs"].contains(n))
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

#[tokio::main]
async fn main() -> ExitCode {
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
    let client = match Client::new(&args.url) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let result = match args.command.as_str() {
        "hold" => hold(&client, &args).await,
        _ => contend(&client, &args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("WORKER FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn acquisition(client: &Client, args: &Args) -> prefect_client::concurrency::Acquire {
    let mut acquire = client.concurrency([args.limit.as_str()]).strict(true);
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
                        .run(async { tokio::time::sleep(hold).await })
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
