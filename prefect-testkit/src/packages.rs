//! The Debian packages the multi-replica layout needs: found on the machine, or installed with
//! `apt-get` (as root, or through password-less sudo).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::venv::{InstallLock, cache_dir, run};
use crate::{Error, harness};

/// The Debian packages the layout needs.
pub const DEBIAN_PACKAGES: [&str; 3] = ["postgresql", "redis-server", "haproxy"];

/// Where the layout's programs are.
#[derive(Debug)]
pub(crate) struct Binaries {
    pub(crate) pg_bin: PathBuf,
    pub(crate) redis_server: PathBuf,
    pub(crate) haproxy: PathBuf,
}

/// Finds the programs, installing the Debian packages that are missing first.
pub(crate) fn ensure_binaries() -> Result<Binaries, Error> {
    let missing = match find_binaries() {
        Ok(found) => return Ok(found),
        Err(missing) => missing,
    };
    std::fs::create_dir_all(cache_dir())
        .map_err(|e| harness(format!("cannot create the cache directory: {e}")))?;
    let _lock = InstallLock::acquire(&cache_dir().join("debian-packages.lock"))?;
    if let Ok(found) = find_binaries() {
        return Ok(found);
    }
    install_debian_packages(&missing)?;
    find_binaries().map_err(|still| {
        harness(format!(
            "after installing {}, these are still missing: {}; install PostgreSQL, Redis and HAProxy \
             so that initdb, redis-server and haproxy are found",
            missing.join(" "),
            still.join(" ")
        ))
    })
}

/// The programs, or the Debian packages that would provide the missing ones.
fn find_binaries() -> Result<Binaries, Vec<&'static str>> {
    let pg_bin = postgres_bin_dir();
    let redis_server = which("redis-server");
    let haproxy = which("haproxy");
    match (pg_bin, redis_server, haproxy) {
        (Some(pg_bin), Some(redis_server), Some(haproxy)) => Ok(Binaries {
            pg_bin,
            redis_server,
            haproxy,
        }),
        (pg, redis, haproxy) => Err(DEBIAN_PACKAGES
            .iter()
            .zip([pg.is_none(), redis.is_none(), haproxy.is_none()])
            .filter(|(_, missing)| *missing)
            .map(|(package, _)| *package)
            .collect()),
    }
}

/// Debian keeps PostgreSQL in /usr/lib/postgresql/<version>/bin (the newest wins); else PATH.
fn postgres_bin_dir() -> Option<PathBuf> {
    let complete = |dir: &Path| {
        ["initdb", "postgres", "pg_isready"]
            .iter()
            .all(|p| dir.join(p).is_file())
    };
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            Some((
                entry.file_name().to_str()?.parse().ok()?,
                entry.path().join("bin"),
            ))
        })
        .filter(|(_, bin)| complete(bin))
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let initdb = which("initdb")?;
    let dir = std::fs::canonicalize(initdb).ok()?.parent()?.to_path_buf();
    complete(&dir).then_some(dir)
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// `apt-get install` as root, or through password-less sudo; otherwise an error naming the
/// packages to install.
fn install_debian_packages(packages: &[&str]) -> Result<(), Error> {
    let by_hand = format!("sudo apt-get install -y {}", packages.join(" "));
    if which("apt-get").is_none() {
        return Err(harness(format!(
            "the multi-replica layout needs PostgreSQL, Redis and HAProxy ({} are missing) and \
             this system has no apt-get; install them with its package manager",
            packages.join(", ")
        )));
    }
    let sudo = if running_as_root() {
        false
    } else if Command::new("sudo")
        .args(["-n", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        true
    } else {
        return Err(harness(format!(
            "the multi-replica layout needs the Debian packages {} and this user cannot install \
             them (not root, no password-less sudo); run `{by_hand}`",
            packages.join(", ")
        )));
    };
    let apt = |args: &[&str]| {
        let mut command = if sudo {
            Command::new("sudo")
        } else {
            Command::new("apt-get")
        };
        if sudo {
            command.args(["-n", "apt-get"]);
        }
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    let mut install_args = vec!["install", "-y", "-q", "--no-install-recommends"];
    install_args.extend(packages);
    tracing::info!(packages = ?packages, "installing Debian packages for the multi-replica layout");
    if run(&mut apt(&install_args), "apt-get install").is_ok() {
        return Ok(());
    }
    // A fresh machine may have no package lists yet.
    run(&mut apt(&["update", "-q"]), "apt-get update")
        .and_then(|()| run(&mut apt(&install_args), "apt-get install"))
        .map_err(|e| {
            harness(format!(
                "installing the Debian packages failed; run `{by_hand}` yourself. {e}"
            ))
        })
}

/// Whether this process runs as root.
pub(crate) fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
