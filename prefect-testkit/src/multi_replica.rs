//! Prefect's multi-replica layout on this machine: PostgreSQL, Redis, several API replicas, one
//! services process and HAProxy in front, as in Prefect's self-hosting guide.
//!
//! [`MultiReplicaServer::start`] installs what is missing (the Debian packages `postgresql`,
//! `redis-server` and `haproxy`; `prefect-redis` into the pinned venv), then starts, all on free
//! 127.0.0.1 ports and in one temporary directory: a PostgreSQL cluster of its own, Redis,
//! migrations once, replica A (`prefect server start --no-services`), then replica B (two at
//! once race on a fresh database), `prefect server services start`, and HAProxy round-robin.
//! Dropping it stops exactly those processes; so does the end of the process that started them.
//!
//! [`MultiReplicaBuilder::without_redis`] starts the misconfigured layout instead: every replica
//! keeps leases in its own memory, so a lease granted by one is unknown to the other.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use prefect_testkit::MultiReplicaServer;
//! let mut stack = MultiReplicaServer::start().await?;
//! let client = stack.client()?; // through the load balancer
//! client.global_concurrency_limits().create("db", 2).send().await?;
//! stack.kill_replica(0)?; // SIGKILL, as a crashed replica
//! # Ok(()) }
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use prefect_client::Client;

use crate::local_server::{DEFAULT_STARTUP_TIMEOUT, quiet_server_settings};
use crate::packages::{Binaries, ensure_binaries, running_as_root};
use crate::process::{Launch, Process};
use crate::venv::{ensure_prefect_redis, ensure_venv};
use crate::{Error, free_port, harness};

/// Options for a [`MultiReplicaServer`].
#[derive(Debug, Clone)]
pub struct MultiReplicaBuilder {
    replicas: usize,
    redis: bool,
    env: Vec<(String, String)>,
    startup_timeout: Duration,
}

impl Default for MultiReplicaBuilder {
    fn default() -> Self {
        MultiReplicaBuilder {
            replicas: 2,
            redis: true,
            env: Vec::new(),
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
        }
    }
}

impl MultiReplicaBuilder {
    /// How many API replicas (default 2; 1 to 26).
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas.clamp(1, 26);
        self
    }

    /// No Redis: every replica keeps leases, messages and caches in its own memory, which is
    /// Prefect's default and wrong with more than one replica (for testing that case).
    pub fn without_redis(mut self) -> Self {
        self.redis = false;
        self
    }

    /// Sets a server setting on every Prefect process (replicas and services).
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// How long each step (database, migrations, each replica, load balancer) may take.
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Installs what is missing, starts every process and waits until the load balancer
    /// answers `/api/health`.
    ///
    /// # Errors
    /// [`Error::Setup`] when the venv or prefect-redis cannot be installed, the Debian packages
    /// are missing and cannot be installed (no apt-get, not root and no password-less sudo, or
    /// apt-get failing: the error says what to run), no free port or temporary directory can be
    /// had, or a step (database, migrations, a replica, the services, the load balancer) fails
    /// or does not finish within the startup timeout (the error holds the end of its log);
    /// [`Error::Client`] when the client that checks the processes' health cannot be built.
    pub async fn start(self) -> Result<MultiReplicaServer, Error> {
        let redis = self.redis;
        let (venv, binaries) = tokio::task::spawn_blocking(move || {
            let venv = ensure_venv()?;
            if redis {
                ensure_prefect_redis(&venv)?;
            }
            Ok::<_, Error>((venv, ensure_binaries()?))
        })
        .await
        .map_err(|e| harness(format!("the installer stopped: {e}")))??;
        let dir = crate::scratch_dir("prefect-replicas-")
            .map_err(|e| harness(format!("cannot create a temporary directory: {e}")))?;
        Starting {
            options: self,
            venv,
            binaries,
            dir: dir.path().to_path_buf(),
        }
        .run(dir)
        .await
    }
}

/// A running multi-replica Prefect; every process it started is stopped on drop.
#[derive(Debug)]
pub struct MultiReplicaServer {
    // Fields drop in this order: the balancer first, PostgreSQL last.
    balancer: Process,
    replicas: Vec<Process>,
    services: Process,
    redis: Option<Process>,
    postgres: Process,
    api_url: String,
    replica_urls: Vec<String>,
    redis_url: Option<String>,
    dir: tempfile::TempDir,
}

impl MultiReplicaServer {
    /// Starts two replicas with Redis; see [`MultiReplicaBuilder`] for options.
    ///
    /// # Errors
    /// Those of [`MultiReplicaBuilder::start`].
    pub async fn start() -> Result<MultiReplicaServer, Error> {
        MultiReplicaBuilder::default().start().await
    }

    /// Options for the layout to start.
    pub fn builder() -> MultiReplicaBuilder {
        MultiReplicaBuilder::default()
    }

    /// The load balancer: `http://127.0.0.1:<port>/api`.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// A client of the load balancer.
    pub fn client(&self) -> Result<Client, prefect_client::Error> {
        Client::new(&self.api_url)
    }

    /// Each replica's own API URL, bypassing the load balancer.
    pub fn replica_urls(&self) -> &[String] {
        &self.replica_urls
    }

    /// `redis://127.0.0.1:<port>/0`, or `None` for the layout without Redis.
    pub fn redis_url(&self) -> Option<&str> {
        self.redis_url.as_deref()
    }

    /// Whether the replicas share lease storage (Redis); false for the misconfigured layout.
    pub fn shares_lease_storage(&self) -> bool {
        self.redis.is_some()
    }

    /// Kills replica `index` with SIGKILL (no clean shutdown), as a crash would; the load
    /// balancer retries refused connections on the others, and its health checks take the replica
    /// out of the rotation within about 2 s.
    ///
    /// # Errors
    /// [`Error::Setup`] when there is no replica `index` (the layout has
    /// [`replicas`](MultiReplicaBuilder::replicas) of them, counted from 0); nothing is killed.
    pub fn kill_replica(&mut self, index: usize) -> Result<(), Error> {
        let count = self.replicas.len();
        let replica = self
            .replicas
            .get_mut(index)
            .ok_or_else(|| harness(format!("there is no replica {index}; there are {count}")))?;
        replica.kill();
        Ok(())
    }

    /// The directory holding the database, the processes' homes and their logs.
    pub fn directory(&self) -> &Path {
        self.dir.path()
    }

    /// The last `lines` lines of every process's log, for diagnosing a failure.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        let processes = std::iter::once(&self.balancer)
            .chain(&self.replicas)
            .chain([&self.services])
            .chain(&self.redis)
            .chain([&self.postgres]);
        for process in processes {
            let _ = writeln!(
                out,
                "--- {}\n{}",
                process.log_path().display(),
                process.log_tail(lines)
            );
        }
        out
    }

    /// Stops every process, the balancer first and PostgreSQL last (also done on drop).
    pub fn stop(&mut self) {
        self.balancer.stop();
        for replica in &mut self.replicas {
            replica.stop();
        }
        self.services.stop();
        if let Some(redis) = self.redis.as_mut() {
            redis.stop();
        }
        self.postgres.stop();
    }
}

/// The layout being started; each step fails with the log of the process that failed.
struct Starting {
    options: MultiReplicaBuilder,
    venv: PathBuf,
    binaries: Binaries,
    dir: PathBuf,
}

impl Starting {
    async fn run(self, dir: tempfile::TempDir) -> Result<MultiReplicaServer, Error> {
        let timeout = self.options.startup_timeout;
        // On any failure below, the processes started so far are dropped, which stops them.
        let (postgres, database_url) = self.start_postgres().await?;
        let (redis, redis_port) = match self.options.redis {
            true => {
                let (process, port) = self.start_redis().await?;
                (Some(process), Some(port))
            }
            false => (None, None),
        };
        let redis_url = redis_port.map(|port| format!("redis://127.0.0.1:{port}/0"));
        let env = self.prefect_env(&database_url, redis_port);
        self.migrate(&env).await?;

        let mut replicas = Vec::new();
        let mut replica_urls = Vec::new();
        for index in 0..self.options.replicas {
            // One after another: replicas started at once on a fresh database race on
            // registering block types.
            let port = free_port()?;
            let name = replica_name(index);
            let mut process = self.spawn_prefect(
                &format!("replica {name}"),
                &format!("replica-{name}"),
                &[
                    "server",
                    "start",
                    "--no-services",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                ],
                &env,
            )?;
            let url = format!("http://127.0.0.1:{port}/api");
            crate::local_server::wait_healthy(&url, &mut process, timeout).await?;
            replicas.push(process);
            replica_urls.push(url);
        }
        let mut services = self.spawn_prefect(
            "the services process",
            "services",
            &["server", "services", "start"],
            &env,
        )?;

        let balancer_port = free_port()?;
        let config = self.dir.join("haproxy.cfg");
        std::fs::write(&config, haproxy_config(balancer_port, &replica_urls))
            .map_err(|e| harness(format!("cannot write {}: {e}", config.display())))?;
        let mut balancer = Process::spawn(
            &self.venv,
            Launch {
                name: "HAProxy".into(),
                argv: vec![
                    path_arg(&self.binaries.haproxy),
                    "-db".into(),
                    "-f".into(),
                    path_arg(&config),
                ],
                env: Vec::new(),
                user: None,
                stop_signal: None,
                log_path: self.dir.join("haproxy.log"),
            },
        )?;
        let api_url = format!("http://127.0.0.1:{balancer_port}/api");
        crate::local_server::wait_healthy(&api_url, &mut balancer, timeout).await?;
        services.check_running()?;
        Ok(MultiReplicaServer {
            balancer,
            replicas,
            services,
            redis,
            postgres,
            api_url,
            replica_urls,
            redis_url,
            dir,
        })
    }

    /// initdb into the temporary directory and starts PostgreSQL (as the `postgres` user when
    /// this process is root); returns it and Prefect's database URL.
    async fn start_postgres(&self) -> Result<(Process, String), Error> {
        let root = self.dir.join("postgres");
        let data = root.join("data");
        std::fs::create_dir_all(&root)
            .map_err(|e| harness(format!("cannot create {}: {e}", root.display())))?;
        let user = if running_as_root() { Some("postgres") } else { None };
        if let Some(user) = user {
            let (uid, gid) = user_ids(user)?;
            // PostgreSQL refuses to run as root: its directory belongs to `postgres`, which
            // needs to reach it through the temporary directory.
            set_mode(&self.dir, 0o755)?;
            std::os::unix::fs::chown(&root, Some(uid), Some(gid))
                .map_err(|e| harness(format!("cannot give {} to {user}: {e}", root.display())))?;
        }
        let mut initdb = Command::new(self.binaries.pg_bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "prefect", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .current_dir(&root);
        if let Some(user) = user {
            let (uid, gid) = user_ids(user)?;
            std::os::unix::process::CommandExt::uid(&mut initdb, uid);
            std::os::unix::process::CommandExt::gid(&mut initdb, gid);
        }
        crate::venv::run(&mut initdb, "initdb (PostgreSQL)")?;
        let port = free_port()?;
        let data_arg = path_arg(&data);
        let socket_dir = format!("unix_socket_directories={}", root.display());
        let port_arg = port.to_string();
        let mut argv = vec![
            path_arg(&self.binaries.pg_bin.join("postgres")),
            "-D".into(),
            data_arg,
        ];
        for setting in [
            "listen_addresses=127.0.0.1",
            &socket_dir,
            "max_connections=300",
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
        ] {
            argv.push("-c".into());
            argv.push(setting.to_string());
        }
        argv.extend(["-p".into(), port_arg.clone()]);
        let mut process = Process::spawn(
            &self.venv,
            Launch {
                name: "PostgreSQL".into(),
                argv,
                env: Vec::new(),
                user,
                // SIGTERM would wait for every client to disconnect.
                stop_signal: Some("SIGINT"),
                log_path: self.dir.join("postgres.log"),
            },
        )?;
        let started = Instant::now();
        loop {
            process.check_running()?;
            let ready = tokio::process::Command::new(self.binaries.pg_bin.join("pg_isready"))
                .args([
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port_arg,
                    "-U",
                    "prefect",
                    "-d",
                    "postgres",
                    "-t",
                    "1",
                ])
                .stdin(Stdio::null())
                .status()
                .await
                .is_ok_and(|s| s.success());
            if ready {
                break;
            }
            if started.elapsed() > self.options.startup_timeout {
                return Err(harness(format!(
                    "PostgreSQL did not accept connections on port {port} within {:?}; its log:\n{}",
                    self.options.startup_timeout,
                    process.log_tail(30)
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok((
            process,
            format!("postgresql+asyncpg://prefect@127.0.0.1:{port}/postgres"),
        ))
    }

    async fn start_redis(&self) -> Result<(Process, u16), Error> {
        let port = free_port()?;
        let data = self.dir.join("redis");
        std::fs::create_dir_all(&data)
            .map_err(|e| harness(format!("cannot create {}: {e}", data.display())))?;
        let mut process = Process::spawn(
            &self.venv,
            Launch {
                name: "Redis".into(),
                argv: vec![
                    path_arg(&self.binaries.redis_server),
                    "--port".into(),
                    port.to_string(),
                    "--bind".into(),
                    "127.0.0.1".into(),
                    "--save".into(),
                    String::new(),
                    "--appendonly".into(),
                    "no".into(),
                    "--dir".into(),
                    path_arg(&data),
                ],
                env: Vec::new(),
                user: None,
                stop_signal: None,
                log_path: self.dir.join("redis.log"),
            },
        )?;
        let started = Instant::now();
        while !redis_answers(port).await {
            process.check_running()?;
            if started.elapsed() > self.options.startup_timeout {
                return Err(harness(format!(
                    "Redis did not answer PING on port {port}; its log:\n{}",
                    process.log_tail(30)
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok((process, port))
    }

    /// Settings shared by every Prefect process.
    fn prefect_env(&self, database_url: &str, redis_port: Option<u16>) -> Vec<(String, String)> {
        let mut env = quiet_server_settings();
        let mut set = |k: &str, v: &str| env.push((k.to_string(), v.to_string()));
        set("PREFECT_API_DATABASE_CONNECTION_URL", database_url);
        set("PREFECT_API_DATABASE_MIGRATE_ON_START", "false");
        if let Some(port) = redis_port {
            let port = &port.to_string();
            set(
                "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE",
                "prefect_redis.lease_storage",
            );
            set("PREFECT_MESSAGING_BROKER", "prefect_redis.messaging");
            set("PREFECT_MESSAGING_CACHE", "prefect_redis.messaging");
            set("PREFECT_SERVER_EVENTS_CAUSAL_ORDERING", "prefect_redis.ordering");
            set(
                "PREFECT_SERVER_DOCKET_URL",
                &format!("redis://127.0.0.1:{port}/1"),
            );
            set("PREFECT_REDIS_MESSAGING_HOST", "127.0.0.1");
            set("PREFECT_REDIS_MESSAGING_PORT", port);
            set("PREFECT_REDIS_MESSAGING_DB", "0");
        }
        env.extend(self.options.env.iter().cloned());
        env
    }

    /// `prefect server database upgrade -y`, once, before any replica starts.
    async fn migrate(&self, env: &[(String, String)]) -> Result<(), Error> {
        let home = self.dir.join("home-migrate");
        let output = tokio::process::Command::new(self.venv.join("bin").join("prefect"))
            .args(["server", "database", "upgrade", "-y"])
            .env("PREFECT_HOME", &home)
            .env_remove("PREFECT_API_URL")
            .env_remove("PREFECT_PROFILE")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(self.options.startup_timeout, output)
            .await
            .map_err(|_| harness("`prefect server database upgrade` did not finish in time".into()))?
            .map_err(|e| harness(format!("cannot run `prefect server database upgrade`: {e}")))?;
        crate::venv::check_output("`prefect server database upgrade -y`", &output)
    }

    fn spawn_prefect(
        &self,
        name: &str,
        home: &str,
        args: &[&str],
        env: &[(String, String)],
    ) -> Result<Process, Error> {
        let home = self.dir.join(format!("home-{home}"));
        let mut env = env.to_vec();
        env.push(("PREFECT_HOME".into(), home.display().to_string()));
        let mut argv = vec![path_arg(&self.venv.join("bin").join("prefect"))];
        argv.extend(args.iter().map(|a| a.to_string()));
        Process::spawn(
            &self.venv,
            Launch {
                name: name.to_string(),
                argv,
                env,
                user: None,
                stop_signal: None,
                log_path: home.with_extension("log"),
            },
        )
    }
}

/// "a", "b", … for replica 0, 1, … (at most 26 replicas).
fn replica_name(index: usize) -> String {
    char::from(b'a' + (index % 26) as u8).to_string()
}

/// Round robin per request; a connection refused by a dead replica is retried on another (so
/// only requests in flight at a crash fail), and health checks every second take it out of
/// the rotation after two failures. A check may take 5 s: a replica slow under load (the
/// default check timeout is the 1 s interval) must not be taken out with the dead one, which
/// would leave no replica and answer 503.
fn haproxy_config(port: u16, replica_urls: &[String]) -> String {
    let mut config = format!(
        "global\n  maxconn 4096\n  log stderr format short local0 notice\n\
         defaults\n  log global\n  mode http\n  timeout connect 2s\n  timeout client 120s\n  timeout server 120s\n  \
         retries 3\n  option redispatch 1\n  timeout check 5s\n\
         frontend api\n  bind 127.0.0.1:{port}\n  default_backend replicas\n\
         backend replicas\n  balance roundrobin\n  option httpchk GET /api/health\n  \
         default-server inter 1s fall 2 rise 2\n"
    );
    for (index, url) in replica_urls.iter().enumerate() {
        let address = url.trim_start_matches("http://").trim_end_matches("/api");
        let _ = writeln!(config, "  server {} {address} check", replica_name(index));
    }
    config
}

async fn redis_answers(port: u16) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut answer = [0u8; 7];
        stream.read_exact(&mut answer).await.ok()?;
        Some(&answer == b"+PONG\r\n")
    };
    tokio::time::timeout(Duration::from_secs(1), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

fn set_mode(path: &Path, mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| harness(format!("cannot change the mode of {}: {e}", path.display())))
}

/// uid and gid of a user, from /etc/passwd.
fn user_ids(user: &str) -> Result<(u32, u32), Error> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.len() > 3 && fields[0] == user)
        .and_then(|fields| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
        .ok_or_else(|| {
            harness(format!(
                "PostgreSQL cannot run as root and there is no `{user}` user to run it as; install \
                 the Debian package postgresql (it creates the user) or run as another user"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_named_by_letter() {
        assert_eq!(replica_name(0), "a");
        assert_eq!(replica_name(1), "b");
    }

    #[test]
    fn haproxy_balances_every_replica_with_health_checks() {
        let config = haproxy_config(
            8080,
            &[
                "http://127.0.0.1:4201/api".into(),
                "http://127.0.0.1:4202/api".into(),
            ],
        );
        assert!(config.contains("bind 127.0.0.1:8080"));
        assert!(config.contains("balance roundrobin"));
        assert!(config.contains("server a 127.0.0.1:4201 check"));
        assert!(config.contains("server b 127.0.0.1:4202 check"));
        assert!(config.contains("option httpchk GET /api/health"));
    }

    #[test]
    fn redis_settings_point_at_the_stack_redis() {
        let starting = Starting {
            options: MultiReplicaBuilder::default().env("EXTRA", "1"),
            venv: PathBuf::new(),
            binaries: Binaries {
                pg_bin: PathBuf::new(),
                redis_server: PathBuf::new(),
                haproxy: PathBuf::new(),
            },
            dir: PathBuf::new(),
        };
        let env = starting.prefect_env("postgresql+asyncpg://prefect@127.0.0.1:5/postgres", Some(6380));
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(
            get("PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE"),
            Some("prefect_redis.lease_storage")
        );
        assert_eq!(get("PREFECT_REDIS_MESSAGING_PORT"), Some("6380"));
        assert_eq!(get("PREFECT_SERVER_DOCKET_URL"), Some("redis://127.0.0.1:6380/1"));
        assert_eq!(get("EXTRA"), Some("1"));
        let without = starting.prefect_env("postgresql+asyncpg://x", None);
        assert!(
            without
                .iter()
                .all(|(k, _)| !k.contains("REDIS") && !k.contains("LEASE_STORAGE"))
        );
    }
}
