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

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Client, Error};

/// The Prefect release the SDK is generated from and tested against.
pub const PREFECT_VERSION: &str = "3.8.8";
/// The FastAPI release that Prefect 3.8.8 works with (newer ones break its server).
pub const FASTAPI_VERSION: &str = "0.150.0";
/// How long [`LocalServer::start`] waits for `/api/health` by default.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

/// Starts the server as a child of this script and stops its whole process group when stdin
/// closes (the parent stopped the server, or died).
const LAUNCHER: &str = r#"
import os, signal, subprocess, sys, threading
server = subprocess.Popen(sys.argv[1:], start_new_session=True)
def stop_when_parent_goes():
    try:
        sys.stdin.buffer.read()
    finally:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(server.pid, sig)
                server.wait(wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        os._exit(0)
threading.Thread(target=stop_when_parent_goes, daemon=True).start()
sys.exit(server.wait())
"#;

/// Options for a [`LocalServer`].
#[derive(Debug, Clone)]
pub struct LocalServerBuilder {
    env: Vec<(String, String)>,
    startup_timeout: Duration,
    port: Option<u16>,
}

impl Default for LocalServerBuilder {
    fn default() -> Self {
        LocalServerBuilder {
            env: Vec::new(),
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            port: None,
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

    /// Installs Prefect if needed, starts the server and waits until it is healthy.
    pub async fn start(self) -> Result<LocalServer, Error> {
        let venv = tokio::task::spawn_blocking(ensure_venv)
            .await
            .map_err(|e| harness(format!("the venv installer stopped: {e}")))??;
        let home = tempfile::Builder::new()
            .prefix("prefect-home-")
            .tempdir()
            .map_err(|e| harness(format!("cannot create a temporary PREFECT_HOME: {e}")))?;
        self.start_in(venv, home.path().to_path_buf(), Some(home)).await
    }

    /// Starts a server on an existing `PREFECT_HOME` (its database is kept), e.g. to restart one.
    pub async fn start_with_home(self, prefect_home: &Path) -> Result<LocalServer, Error> {
        let venv = tokio::task::spawn_blocking(ensure_venv)
            .await
            .map_err(|e| harness(format!("the venv installer stopped: {e}")))??;
        self.start_in(venv, prefect_home.to_path_buf(), None).await
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
        let log_path = home.join(format!("server-{port}.log"));
        let log = std::fs::File::create(&log_path)
            .map_err(|e| harness(format!("cannot create {}: {e}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(|e| harness(format!("cannot share the log file: {e}")))?;
        let mut command = Command::new(venv.join("bin").join("python"));
        command
            .arg("-c")
            .arg(LAUNCHER)
            .arg(venv.join("bin").join("prefect"))
            .args([
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .env("PREFECT_HOME", &home)
            .env("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
            .env("PREFECT_UI_ENABLED", "false")
            .env("PREFECT_SERVER_UI_ENABLED", "false")
            .env("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
            .env_remove("PREFECT_API_URL")
            .env_remove("PREFECT_PROFILE")
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log_err);
        for (name, value) in &self.env {
            command.env(name, value);
        }
        let mut child = command.spawn().map_err(|e| {
            harness(format!(
                "cannot start `prefect server start` from {}: {e}",
                venv.display()
            ))
        })?;
        let stdin = child.stdin.take();
        let api_url = format!("http://127.0.0.1:{port}/api");
        let mut server = LocalServer {
            child,
            stdin,
            api_url,
            port,
            home,
            log_path,
            _owned_home: owned_home,
        };
        server.wait_healthy(self.startup_timeout).await?;
        Ok(server)
    }
}

/// A running Prefect server; stopped on drop.
#[derive(Debug)]
pub struct LocalServer {
    child: Child,
    stdin: Option<ChildStdin>,
    api_url: String,
    port: u16,
    home: PathBuf,
    log_path: PathBuf,
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
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    async fn wait_healthy(&mut self, timeout: Duration) -> Result<(), Error> {
        let client = Client::builder(&self.api_url)
            .request_timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(1))
            .max_retries(0)
            .build()?;
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(harness(format!(
                    "`prefect server start` exited ({status}) before answering; its log ({}):\n{}",
                    self.log_path.display(),
                    self.log_tail(30)
                )));
            }
            if client.health().await.is_ok() {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(harness(format!(
                    "the Prefect server on port {} did not answer /api/health within {timeout:?}; its \
                     log ({}):\n{}",
                    self.port,
                    self.log_path.display(),
                    self.log_tail(30)
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Stops the server and waits until it has exited.
    pub fn stop(&mut self) {
        // Closing stdin makes the launcher stop the server's process group.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.stop();
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
    let cache = cache_dir();
    let venv = cache.join(format!("venv-prefect-{PREFECT_VERSION}"));
    let marker = venv.join(".complete");
    if marker.exists() {
        return Ok(venv);
    }
    std::fs::create_dir_all(&cache)
        .map_err(|e| harness(format!("cannot create {}: {e}", cache.display())))?;
    let _lock = InstallLock::acquire(&cache.join(format!("venv-prefect-{PREFECT_VERSION}.lock")))?;
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
        Command::new(venv.join("bin").join("pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("prefect=={PREFECT_VERSION}"),
            &format!("fastapi=={FASTAPI_VERSION}"),
        ]),
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
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
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
