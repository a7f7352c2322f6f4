//! Runs Prefect's multi-replica layout (PostgreSQL, Redis, two API replicas, one services
//! process, HAProxy) on this machine until Ctrl-C, and prints where it listens.
//!
//!     scripts/multi-replica-server.sh                  # with Redis (the supported layout)
//!     scripts/multi-replica-server.sh --without-redis  # leases kept per replica (misconfigured)
//!
//! Installs the Debian packages postgresql, redis-server and haproxy when missing (as root or
//! with password-less sudo) and prefect-redis into the pinned venv.

use prefect_testkit::MultiReplicaServer;

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("multi-replica server failed: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut builder = MultiReplicaServer::builder();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--without-redis" => builder = builder.without_redis(),
            other => {
                return Err(format!("unknown argument {other:?}; the only option is --without-redis").into());
            }
        }
    }
    println!("starting PostgreSQL, Redis, two Prefect replicas, services and HAProxy (about 20 s)...");
    let stack = builder.start().await?;
    println!("PREFECT_API_URL={}", stack.api_url());
    for (index, url) in stack.replica_urls().iter().enumerate() {
        println!("replica {index}: {url}");
    }
    match stack.redis_url() {
        Some(url) => println!("redis: {url} (lease storage shared by the replicas)"),
        None => println!("no Redis: every replica keeps its own leases (misconfigured on purpose)"),
    }
    println!("logs: {}", stack.directory().display());
    println!("Ctrl-C stops every process");
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    Ok(())
}
