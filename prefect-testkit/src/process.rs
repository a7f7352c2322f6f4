//! A server process started by the harness: its whole process group stops when the handle is
//! dropped or the process that started it ends, however it ends (the launcher watches a pipe
//! from its parent).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, harness};

/// Runs `argv` in a new session as a child of this script. A line `kill` on stdin sends SIGKILL
/// to its process group; end of stdin (the parent stopped it, or died), SIGINT, SIGTERM or
/// SIGHUP stop the group with the stop signal, then SIGKILL. Options before the command: `--launch-user NAME` runs it as that
/// user (PostgreSQL refuses to run as root), `--launch-stop-signal NAME` (default SIGTERM).
const LAUNCHER: &str = r#"
import os, signal, subprocess, sys, threading
args, user, stop_signal = sys.argv[1:], None, signal.SIGTERM
while args and args[0].startswith("--launch-"):
    if args[0] == "--launch-user":
        user = args[1]
    elif args[0] == "--launch-stop-signal":
        stop_signal = signal.Signals[args[1]]
    args = args[2:]
options = {}
if user is not None:
    import pwd
    entry = pwd.getpwnam(user)
    options = dict(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
server = subprocess.Popen(args, start_new_session=True, **options)
def signal_group(sig):
    try:
        os.killpg(server.pid, sig)
        return True
    except ProcessLookupError:
        return False
def stop_and_exit():
    for sig, wait in ((stop_signal, 10), (signal.SIGKILL, 5)):
        if not signal_group(sig):
            break
        try:
            server.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    os._exit(0)
def stop_when_parent_goes():
    try:
        for line in sys.stdin.buffer:
            if line.strip() == b"kill":
                signal_group(signal.SIGKILL)
    finally:
        stop_and_exit()
# Ctrl-C or a signal to the caller's process group reaches this launcher but not the server
# (a session of its own): stop the server too rather than leave it behind.
# (A thread, because the main thread waits for the server holding the lock wait() needs.)
for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(sig, lambda *_: threading.Thread(target=stop_and_exit).start())
threading.Thread(target=stop_when_parent_goes, daemon=True).start()
sys.exit(server.wait())
"#;

/// How a [`Process`] is started.
pub(crate) struct Launch<'a> {
    /// What the log names it, e.g. "replica a".
    pub(crate) name: String,
    /// The program and its arguments.
    pub(crate) argv: Vec<String>,
    /// Environment added to this process's.
    pub(crate) env: Vec<(String, String)>,
    /// Run as this user instead of the current one.
    pub(crate) user: Option<&'a str>,
    /// Signal name for a graceful stop (default SIGTERM).
    pub(crate) stop_signal: Option<&'a str>,
    /// Where its stdout and stderr go.
    pub(crate) log_path: PathBuf,
}

/// A running server process (and its children); stopped on drop.
#[derive(Debug)]
pub(crate) struct Process {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    log_path: PathBuf,
}

impl Process {
    /// Starts `launch` under the launcher, run by the venv's Python.
    pub(crate) fn spawn(venv: &Path, launch: Launch<'_>) -> Result<Process, Error> {
        let log = std::fs::File::create(&launch.log_path)
            .map_err(|e| harness(format!("cannot create {}: {e}", launch.log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(|e| harness(format!("cannot share the log file: {e}")))?;
        let mut command = Command::new(venv.join("bin").join("python"));
        command.arg("-c").arg(LAUNCHER);
        if let Some(user) = launch.user {
            command.args(["--launch-user", user]);
        }
        if let Some(signal) = launch.stop_signal {
            command.args(["--launch-stop-signal", signal]);
        }
        command
            .args(&launch.argv)
            .env_remove("PREFECT_API_URL")
            .env_remove("PREFECT_PROFILE")
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log_err);
        let mut child = command.spawn().map_err(|e| {
            harness(format!(
                "cannot start {} (`{}`): {e}",
                launch.name,
                launch.argv.join(" ")
            ))
        })?;
        let stdin = child.stdin.take();
        Ok(Process {
            name: launch.name,
            child,
            stdin,
            log_path: launch.log_path,
        })
    }

    /// The exit status, if it has exited.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Fails with the log's tail if the process has exited.
    pub(crate) fn check_running(&mut self) -> Result<(), Error> {
        match self.exited() {
            None => Ok(()),
            Some(status) => Err(harness(format!(
                "{} exited ({status}); its log ({}):\n{}",
                self.name,
                self.log_path.display(),
                self.log_tail(30)
            ))),
        }
    }

    /// The last lines of its log.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Where its output goes.
    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Sends SIGKILL to its process group (no clean shutdown) and waits until it has exited.
    pub(crate) fn kill(&mut self) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = stdin.write_all(b"kill\n").and_then(|()| stdin.flush());
        }
        self.wait_exit(Duration::from_secs(10));
    }

    /// Stops it (stop signal, then SIGKILL) and waits until it has exited.
    pub(crate) fn stop(&mut self) {
        // Closing stdin makes the launcher stop the process group.
        drop(self.stdin.take());
        self.wait_exit(Duration::from_secs(20));
    }

    fn wait_exit(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}
