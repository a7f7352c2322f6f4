//! A real Prefect server on this machine, for integration tests and examples
//! (feature `local-server`).
//!
//! [`LocalServer::start`] installs the pinned Prefect into a cached venv the first time
//! (`python3 -m venv` + pip, about 30 s), then runs `prefect server start` on a free
//! 127.0.0.1 port with SQLite in a fresh temporary `PREFECT_HOME`, and waits until `/api/health`
//! answers. Dropping the [`LocalServer`] stops it; so does the end of the process that started
//! it, however it ends (the server watches a pipe from its parent).
//!
//! ```no_run
//! # async fn demo() -> Result<(), prefect_client::Error> {
//! use prefect_client::local_server::LocalServer;
//! let server = LocalServer::start().await?;
//! let client = server.client()?;
//! client.concurrency_limits().create("test", 1).await?;
//! # Ok(()) }
//! ```

mod multi_replica;
mod process;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use multi_replica::{MultiReplicaBuilder, MultiReplicaServer};
use process::{Launch, Process};

use crate::{Client, Error};

/// The Prefect release the harness installs: the one the SDK is generated from.
pub use crate::PREFECT_VERSION;
/// The FastAPI release that Prefect 3.8.8 works with (newer ones break its server).
pub const FASTAPI_VERSION: &str = "0.150.0";
/// How long [`LocalServer::start`] waits for `/api/health` by default.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

/// Options for a [`LocalServer`].
#[derive(Debug, Clone)]
pub struct LocalServerBuilder {
    env: Vec<(String, String)>,
    startup_timeout: Duration,
    port: Option<u16>,
    release: Option<(String, Vec<String>)>,
}

impl Default for LocalServerBuilder {
    fn default() -> Self {
        LocalServerBuilder {
            env: Vec::new(),
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            port: None,
            release: None,
        }
    }
}

impl LocalServerBuilder {
    /// Sets a server setting, e.g. `("PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED", "true")`.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// How long to wait for the server to answer `/api/health`.
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Listens on this port instead of a free one (to restart a server where it was).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Runs another Prefect release than the pinned one (in a venv of its own), with the
    /// packages it needs pinned too, e.g. `("3.4.7", &["fastapi==0.115.14"])`: to check how
    /// the SDK meets an older server.
    pub fn prefect_release(mut self, version: &str, requirements: &[&str]) -> Self {
        let requirements = requirements.iter().map(|r| r.to_string()).collect();
        self.release = Some((version.to_string(), requirements));
        self
    }

    /// Installs Prefect if needed, starts the server and waits until it is healthy.
    pub async fn start(self) -> Result<LocalServer, Error> {
        let venv = self.venv().await?;
        let home = tempfile::Builder::new()
            .prefix("prefect-home-")
            .tempdir()
            .map_err(|e| harness(format!("cannot create a temporary PREFECT_HOME: {e}")))?;
        self.start_in(venv, home.path().to_path_buf(), Some(home)).await
    }

    /// Starts a server on an existing `PREFECT_HOME` (its database is kept), e.g. to restart one.
    pub async fn start_with_home(self, prefect_home: &Path) -> Result<LocalServer, Error> {
        let venv = self.venv().await?;
        self.start_in(venv, prefect_home.to_path_buf(), None).await
    }

    /// The venv of the Prefect release to run, installed if needed.
    async fn venv(&self) -> Result<PathBuf, Error> {
        let release = self.release.clone();
        tokio::task::spawn_blocking(move || match release {
            None => ensure_venv(),
            Some((version, requirements)) => ensure_venv_of(&version, &requirements),
        })
        .await
        .map_err(|e| harness(format!("the venv installer stopped: {e}")))?
    }

    async fn start_in(
        self,
        venv: PathBuf,
        home: PathBuf,
        owned_home: Option<tempfile::TempDir>,
    ) -> Result<LocalServer, Error> {
        let port = match self.port {
            Some(port) => port,
            None => free_port()?,
        };
        let mut env = vec![("PREFECT_HOME".to_string(), home.display().to_string())];
        env.extend(quiet_server_settings());
        env.extend(self.env.iter().cloned());
        let process = Process::spawn(
            &venv,
            Launch {
                name: "`prefect server start`".into(),
                argv: vec![
                    venv.join("bin").join("prefect").display().to_string(),
                    "server".into(),
                    "start".into(),
                    "--host".into(),
                    "127.0.0.1".into(),
                    "--port".into(),
                    port.to_string(),
                ],
                env,
                user: None,
                stop_signal: None,
                log_path: home.join(format!("server-{port}.log")),
            },
        )?;
        let api_url = format!("http://127.0.0.1:{port}/api");
        let mut server = LocalServer {
            process,
            api_url,
            port,
            home,
            _owned_home: owned_home,
        };
        server.wait_healthy(self.startup_timeout).await?;
        Ok(server)
    }
}

/// A running Prefect server; stopped on drop.
#[derive(Debug)]
pub struct LocalServer {
    process: Process,
    api_url: String,
    port: u16,
    home: PathBuf,
    _owned_home: Option<tempfile::TempDir>,
}

impl LocalServer {
    /// Starts a server with default settings; see [`LocalServerBuilder`] for options.
    pub async fn start() -> Result<LocalServer, Error> {
        LocalServerBuilder::default().start().await
    }

    /// Options for the server to start.
    pub fn builder() -> LocalServerBuilder {
        LocalServerBuilder::default()
    }

    /// `http://127.0.0.1:<port>/api`.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's `PREFECT_HOME` (its SQLite database and log).
    pub fn prefect_home(&self) -> &Path {
        &self.home
    }

    /// A client for this server.
    pub fn client(&self) -> Result<Client, Error> {
        Client::new(&self.api_url)
    }

    /// The last lines of the server's log, for diagnosing a failure.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    async fn wait_healthy(&mut self, timeout: Duration) -> Result<(), Error> {
        wait_healthy(&self.api_url, &mut self.process, timeout).await
    }

    /// Stops the server and waits until it has exited (also done on drop).
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

/// Settings that keep a test server quiet and local: no analytics, no UI, warnings only.
fn quiet_server_settings() -> Vec<(String, String)> {
    [
        ("PREFECT_SERVER_ANALYTICS_ENABLED", "false"),
        ("PREFECT_UI_ENABLED", "false"),
        ("PREFECT_SERVER_UI_ENABLED", "false"),
        ("PREFECT_SERVER_LOGGING_LEVEL", "WARNING"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Waits until `api_url` answers `/api/health`, failing early with the log if `process` exits.
async fn wait_healthy(api_url: &str, process: &mut Process, timeout: Duration) -> Result<(), Error> {
    let client = Client::builder(api_url)
        .request_timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(1))
        .max_retries(0)
        .build()?;
    let started = Instant::now();
    loop {
        process.check_running()?;
        if client.health().await.is_ok() {
            return Ok(());
        }
        if started.elapsed() > timeout {
            return Err(harness(format!(
                "{api_url} did not answer /health within {timeout:?}; the log ({}):\n{}",
                process.log_path().display(),
                process.log_tail(30)
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn harness(message: String) -> Error {
    Error::Config(format!("local Prefect server: {message}"))
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16, Error> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| harness(format!("cannot find a free port on 127.0.0.1: {e}")))
}

/// Where venvs are cached: `$PREFECT_CLIENT_CACHE_DIR`, else `$XDG_CACHE_HOME/prefect-client`,
/// else `~/.cache/prefect-client` (the same place `scripts/prefect-venv.sh` uses).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PREFECT_CLIENT_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("prefect-client");
    }
    dirs::home_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join(".cache")
        .join("prefect-client")
}

/// Returns the cached venv holding the pinned Prefect, creating it first if needed.
///
/// Safe to call from several processes at once: one installs while the others wait on a lock
/// directory. Errors name what is missing (python3, the venv module, the package index).
pub fn ensure_venv() -> Result<PathBuf, Error> {
    ensure_venv_of(PREFECT_VERSION, &[format!("fastapi=={FASTAPI_VERSION}")])
}

/// Returns the cached venv of `prefect==version` with `requirements`, creating it if needed.
fn ensure_venv_of(version: &str, requirements: &[String]) -> Result<PathBuf, Error> {
    let cache = cache_dir();
    let venv = cache.join(format!("venv-prefect-{version}"));
    let marker = venv.join(".complete");
    if marker.exists() {
        return Ok(venv);
    }
    std::fs::create_dir_all(&cache)
        .map_err(|e| harness(format!("cannot create {}: {e}", cache.display())))?;
    let _lock = InstallLock::acquire(&cache.join(format!("venv-prefect-{version}.lock")))?;
    if marker.exists() {
        return Ok(venv);
    }
    let python = which_python()?;
    let _ = std::fs::remove_dir_all(&venv);
    run(
        Command::new(&python).args(["-m", "venv"]).arg(&venv),
        "python3 -m venv (on Debian/Ubuntu install the python3-venv package)",
    )?;
    run(
        Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("prefect=={version}"))
            .args(requirements),
        "pip install prefect (needs access to the Python package index)",
    )?;
    std::fs::write(&marker, b"").map_err(|e| harness(format!("cannot write {}: {e}", marker.display())))?;
    Ok(venv)
}

fn which_python() -> Result<PathBuf, Error> {
    for candidate in ["python3", "python"] {
        let ok = Command::new(candidate)
            .args([
                "-c",
                "import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(PathBuf::from(candidate));
        }
    }
    Err(harness(
        "python3 (3.9 or newer) was not found on PATH; install Python 3 to run a local Prefect server, \
         or set PREFECT_API_URL to a server you already run"
            .into(),
    ))
}

fn run(command: &mut Command, what: &str) -> Result<(), Error> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| harness(format!("cannot run {what}: {e}")))?;
    check_output(what, &output)
}

/// Ok if the command succeeded, else an error with the last lines of its stderr.
fn check_output(what: &str, output: &std::process::Output) -> Result<(), Error> {
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
    Err(harness(format!(
        "{what} failed ({}):\n{}",
        output.status,
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    )))
}

/// A lock directory held while a venv is installed; stale locks (over 10 minutes) are taken over.
struct InstallLock(PathBuf);

impl InstallLock {
    fn acquire(path: &Path) -> Result<InstallLock, Error> {
        let started = Instant::now();
        loop {
            match std::fs::create_dir(path) {
                Ok(()) => return Ok(InstallLock(path.to_path_buf())),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = std::fs::metadata(path)
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(600));
                    if stale {
                        let _ = std::fs::remove_dir(path);
                        continue;
                    }
                    if started.elapsed() > Duration::from_secs(900) {
                        return Err(harness(format!(
                            "waited 15 minutes for another install holding {}; remove it if no install runs",
                            path.display()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => return Err(harness(format!("cannot create lock {}: {e}", path.display()))),
            }
        }
    }
}

impl Drop for InstallLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}
