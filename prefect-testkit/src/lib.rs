//! A real Prefect server on this machine, for the tests and examples of code that uses
//! [`prefect_client`].
//!
//! - [`LocalServer`]: one `prefect server start` on a free 127.0.0.1 port with SQLite in a
//!   temporary `PREFECT_HOME` (in memory where `/dev/shm` exists). The first start installs the pinned Prefect into a cached venv
//!   (`python3 -m venv` + pip, about 30 s; see [`cache_dir`]).
//! - [`MultiReplicaServer`]: Prefect's multi-replica layout (PostgreSQL, Redis, API replicas,
//!   services and HAProxy), installing the Debian packages it needs when they are missing.
//!
//! Every process it starts stops when its handle is dropped, and when the process that started
//! it ends, however it ends. Add it for tests only:
//!
//! ```toml
//! [dev-dependencies]
//! prefect-testkit = "0.1"
//! ```
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use prefect_testkit::LocalServer;
//! let server = LocalServer::start().await?;
//! let client = server.client()?;
//! client.concurrency_limits().create("test", 1).await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod local_server;
mod multi_replica;
mod packages;
mod process;
mod venv;
mod worker;

pub use local_server::{DEFAULT_STARTUP_TIMEOUT, LocalServer, LocalServerBuilder};
pub use multi_replica::{MultiReplicaBuilder, MultiReplicaServer};
pub use packages::DEBIAN_PACKAGES;
pub use venv::{
    FASTAPI_VERSION, PREFECT_REDIS_VERSION, PREFECT_VERSION, SQLALCHEMY_REQUIREMENT, cache_dir, ensure_venv,
};
pub use worker::{WORKER_BINARY, worker_binary};

/// What the test kit can fail with. Its messages say what to install or change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Setting up or running the local servers failed: a missing program, an install, a process
    /// that exited, a server that did not become healthy.
    #[error("prefect-testkit: {0}")]
    Setup(String),
    /// The SDK failed talking to a server the kit started.
    #[error(transparent)]
    Client(#[from] prefect_client::Error),
}

/// A temporary directory for a server's state: in memory (`/dev/shm`) where the machine has
/// it, so SQLite's and PostgreSQL's syncs do not wait on the disk, else the usual temp dir.
pub(crate) fn scratch_dir(prefix: &str) -> std::io::Result<tempfile::TempDir> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = builder.tempdir_in(shm)
    {
        return Ok(dir);
    }
    builder.tempdir()
}

pub(crate) fn harness(message: String) -> Error {
    Error::Setup(message)
}

/// A free TCP port on 127.0.0.1.
///
/// # Errors
/// [`Error::Setup`] when no port on 127.0.0.1 can be bound.
pub fn free_port() -> Result<u16, Error> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| harness(format!("cannot find a free port on 127.0.0.1: {e}")))
}

/// The user's Prefect server when `PREFECT_API_URL` is set (with the rest of Prefect's
/// settings, see [`prefect_client::Config::from_env`]); otherwise a [`LocalServer`] started
/// here, returned with the client so that it lives as long as the caller keeps it. For
/// examples and tools that should run anywhere.
///
/// # Errors
/// [`Error::Client`] for Prefect settings the SDK refuses (with `PREFECT_API_URL` set: a bad
/// URL, key, profile or TLS file); otherwise those of [`LocalServer::start`].
pub async fn connect_or_start() -> Result<(prefect_client::Client, Option<LocalServer>), Error> {
    match std::env::var("PREFECT_API_URL") {
        Ok(url) if !url.trim().is_empty() => {
            eprintln!("using the Prefect server at {url}");
            Ok((prefect_client::Client::from_env()?, None))
        }
        _ => {
            eprintln!(
                "PREFECT_API_URL is not set: starting a local Prefect server (the first run installs Prefect, about 30 s)"
            );
            let server = LocalServer::start().await?;
            eprintln!("local Prefect server at {}", server.api_url());
            Ok((server.client()?, Some(server)))
        }
    }
}
