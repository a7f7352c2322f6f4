//! One Prefect server on this machine, with SQLite in a temporary `PREFECT_HOME`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use prefect_client::Client;

use crate::process::{Launch, Process};
use crate::venv::{ensure_venv, ensure_venv_of};
use crate::{Error, free_port, harness};

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

    /// Turns on the server's log streaming (`/logs/out`; off by default in Prefect):
    /// `PREFECT_SERVER_LOGS_STREAM_OUT_ENABLED` and `PREFECT_SERVER_LOGS_STREAM_PUBLISHING_ENABLED`.
    pub fn log_streaming(self) -> Self {
        self.env("PREFECT_SERVER_LOGS_STREAM_OUT_ENABLED", "true")
            .env("PREFECT_SERVER_LOGS_STREAM_PUBLISHING_ENABLED", "true")
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
    ///
    /// # Errors
    /// [`Error::Setup`] when the venv cannot be installed (see [`ensure_venv`]), no free port
    /// or temporary `PREFECT_HOME` can be had, the server cannot be started, exits while
    /// starting (a [`port`](LocalServerBuilder::port) that is taken, say) or does not answer
    /// `/api/health` within the startup timeout (the error holds the end of its log);
    /// [`Error::Client`] when the client that checks its health cannot be built.
    pub async fn start(self) -> Result<LocalServer, Error> {
        let venv = self.venv().await?;
        let home = crate::scratch_dir("prefect-home-")
            .map_err(|e| harness(format!("cannot create a temporary PREFECT_HOME: {e}")))?;
        self.start_in(venv, home.path().to_path_buf(), Some(home)).await
    }

    /// Starts a server on an existing `PREFECT_HOME` (its database is kept), e.g. to restart one.
    ///
    /// # Errors
    /// Those of [`start`](LocalServerBuilder::start), but for the temporary `PREFECT_HOME`.
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
                    venv.join("bin").join("python").display().to_string(),
                    "-c".into(),
                    SERVER_WITHOUT_CYCLIC_GC.into(),
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
    ///
    /// # Errors
    /// Those of [`LocalServerBuilder::start`].
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
    pub fn client(&self) -> Result<Client, prefect_client::Error> {
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
/// `prefect server start`, with Python's cyclic garbage collector off. Prefect 3.8 on SQLite
/// stalls for its 60 s busy timeout when a collection frees a cursor while that cursor's
/// connection waits for the database lock in its worker thread: the event loop blocks in
/// `sqlite3_reset` and the lock holder never gets to commit (seen as recurring one-minute
/// stalls, "database is locked" and 503s under a few dozen concurrent runs). Reference
/// counting still frees everything else; a test server lives minutes.
const SERVER_WITHOUT_CYCLIC_GC: &str = "import gc, sys\n\
    gc.disable()\n\
    from prefect.cli import app\n\
    sys.argv[0] = 'prefect'\n\
    sys.exit(app())\n";

pub(crate) fn quiet_server_settings() -> Vec<(String, String)> {
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
pub(crate) async fn wait_healthy(
    api_url: &str,
    process: &mut Process,
    timeout: Duration,
) -> Result<(), Error> {
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
