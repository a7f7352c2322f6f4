//! The cached Python venvs that hold Prefect (and prefect-redis), installed once per release and
//! shared by every process on the machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, harness};

/// The Prefect release the test kit installs: the one the SDK is generated from.
pub use prefect_client::PREFECT_VERSION;
/// The FastAPI release that Prefect 3.8.8 works with (newer ones break its server).
pub const FASTAPI_VERSION: &str = "0.150.0";
/// SQLAlchemy releases Prefect's server works with: with 2.1 its scheduler fails every loop
/// ("Can't evaluate bulk DML statement") and no schedule makes runs.
pub const SQLALCHEMY_REQUIREMENT: &str = "sqlalchemy[asyncio]>=2.0,<2.1";
/// The prefect-redis release that works with the pinned Prefect.
pub const PREFECT_REDIS_VERSION: &str = "0.3.0";

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
///
/// # Errors
/// [`Error::Setup`] when the cache directory ([`cache_dir`]) cannot be created or written,
/// another install has held its lock for 15 minutes, no python3 of 3.9 or newer is on `PATH`,
/// `python3 -m venv` fails (on Debian and Ubuntu: the `python3-venv` package is missing), or
/// `pip install` fails (the package index cannot be reached); the error holds the end of the
/// failing command's output.
pub fn ensure_venv() -> Result<PathBuf, Error> {
    ensure_venv_of(PREFECT_VERSION, &[format!("fastapi=={FASTAPI_VERSION}")])
}

/// Returns the cached venv of `prefect==version` with `requirements` (and
/// [`SQLALCHEMY_REQUIREMENT`]), creating it if needed. A venv installed with other pins gets
/// them installed over.
pub(crate) fn ensure_venv_of(version: &str, requirements: &[String]) -> Result<PathBuf, Error> {
    let cache = cache_dir();
    let venv = cache.join(format!("venv-prefect-{version}"));
    let marker = venv.join(".complete");
    let mut pins: Vec<String> = vec![format!("prefect=={version}")];
    pins.extend(requirements.iter().cloned());
    pins.push(SQLALCHEMY_REQUIREMENT.to_string());
    let installed = || std::fs::read_to_string(&marker).is_ok_and(|had| had == pins.join("\n"));
    if installed() {
        return Ok(venv);
    }
    std::fs::create_dir_all(&cache)
        .map_err(|e| harness(format!("cannot create {}: {e}", cache.display())))?;
    let _lock = InstallLock::acquire(&cache.join(format!("venv-prefect-{version}.lock")))?;
    if installed() {
        return Ok(venv);
    }
    if !marker.exists() {
        let python = which_python()?;
        let _ = std::fs::remove_dir_all(&venv);
        run(
            Command::new(&python).args(["-m", "venv"]).arg(&venv),
            "python3 -m venv (on Debian/Ubuntu install the python3-venv package)",
        )?;
    }
    run(
        Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(&pins),
        "pip install prefect (needs access to the Python package index)",
    )?;
    std::fs::write(&marker, pins.join("\n"))
        .map_err(|e| harness(format!("cannot write {}: {e}", marker.display())))?;
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

pub(crate) fn run(command: &mut Command, what: &str) -> Result<(), Error> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| harness(format!("cannot run {what}: {e}")))?;
    check_output(what, &output)
}

/// Ok if the command succeeded, else an error with the last lines of its stderr.
pub(crate) fn check_output(what: &str, output: &std::process::Output) -> Result<(), Error> {
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
pub(crate) struct InstallLock(PathBuf);

impl InstallLock {
    pub(crate) fn acquire(path: &Path) -> Result<InstallLock, Error> {
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

/// Installs prefect-redis into the pinned venv once (it adds only itself).
pub(crate) fn ensure_prefect_redis(venv: &Path) -> Result<(), Error> {
    let marker = venv.join(format!(".prefect-redis-{PREFECT_REDIS_VERSION}"));
    if marker.exists() {
        return Ok(());
    }
    let _lock = InstallLock::acquire(&venv.with_extension("prefect-redis.lock"))?;
    if marker.exists() {
        return Ok(());
    }
    run(
        Command::new(venv.join("bin").join("pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("prefect-redis=={PREFECT_REDIS_VERSION}"),
        ]),
        "pip install prefect-redis (needs access to the Python package index)",
    )?;
    std::fs::write(&marker, b"").map_err(|e| harness(format!("cannot write {}: {e}", marker.display())))
}
