//! Processes that serve or work for Prefect (the `serve` and `worker` examples, Prefect's own
//! worker), and Prefect's Python client creating and cancelling runs, for the serving suites.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use futures_util::TryStreamExt;
use prefect_client::Client;
use prefect_client::runs::RunContext;
use prefect_client::serve::{RustFlow, ServeSettings};
use prefect_client::types::{FlowRunResponse, StateType};
use prefect_testkit::{LocalServer, LocalServerBuilder};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use uuid::Uuid;

/// A program of this package's examples (`serve`, `worker`), built by `cargo test`.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> -> target/<profile>/examples/<name>
    let profile = exe.parent().unwrap().parent().unwrap();
    let path = profile.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is not built (cargo test builds the examples)",
        path.display()
    );
    path
}

/// A child process, killed when dropped; its output is kept.
pub struct Process {
    pub child: Child,
    pub output: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl Process {
    /// Starts `program` with `env` and waits until a line of its output contains `ready`
    /// (within `within`); returns it and that line.
    pub async fn start(
        program: &std::path::Path,
        env: &[(&str, String)],
        ready: &str,
        within: Duration,
    ) -> (Process, String) {
        Process::start_with_args(program, &[], env, ready, within).await
    }

    /// [`Process::start`] with command-line arguments.
    pub async fn start_with_args(
        program: &std::path::Path,
        args: &[&str],
        env: &[(&str, String)],
        ready: &str,
        within: Duration,
    ) -> (Process, String) {
        let mut command = Command::new(program);
        command
            .args(args)
            .env_remove("PREFECT__FLOW_RUN_ID")
            .envs(env.iter().map(|(k, v)| (*k, v.clone())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("the program starts");
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (found, mut found_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let (output, found, ready) = (output.clone(), found.clone(), ready.to_string());
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.contains(&ready) {
                        let _ = found.send(line.clone());
                    }
                    output.lock().unwrap().push(line);
                }
            });
        }
        let process = Process { child, output };
        let line = match tokio::time::timeout(within, found_rx.recv()).await {
            Ok(Some(line)) => line,
            _ => panic!(
                "{} did not say {ready:?} within {within:?}:\n{}",
                program.display(),
                process.output()
            ),
        };
        (process, line)
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        signal(&self.child, "-TERM");
    }

    /// Sends SIGKILL.
    pub fn kill(&self) {
        signal(&self.child, "-KILL");
    }

    /// Sends SIGTERM and requires the process to exit with code 0 within `within`.
    pub async fn exits_zero_on_sigterm(&mut self, within: Duration) {
        self.terminate();
        let code = self.exit_code(within).await;
        assert_eq!(code, Some(0), "{}", self.output());
    }

    /// Waits for the process to exit, at most `within`; its exit code.
    pub async fn exit_code(&mut self, within: Duration) -> Option<i32> {
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => panic!("the process did not exit within {within:?}:\n{}", self.output()),
        }
    }
}

fn signal(child: &Child, which: &str) {
    let pid = child.id().expect("still running").to_string();
    let status = std::process::Command::new("kill")
        .args([which, &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The `serve` example against `api_url`, serving; returns it and its deployment's id.
pub async fn serve_example(api_url: &str, env: &[(&str, String)]) -> (Process, Uuid) {
    let mut all = vec![("PREFECT_API_URL", api_url.to_string())];
    all.extend(env.iter().cloned());
    let (process, line) = Process::start(&example("serve"), &all, "serving", Duration::from_secs(120)).await;
    let id = line
        .rsplit(' ')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no deployment id in {line:?}"));
    (process, id)
}

/// Runs a Python script with Prefect's venv against `api_url`; its standard output.
pub async fn python(api_url: &str, script: &str, args: &[&str]) -> String {
    let home = tempfile::tempdir().unwrap();
    python_in(home.path(), api_url, script, args).await
}

/// [`python`] with `home` as Prefect's home (its settings and local result storage).
pub async fn python_in(home: &std::path::Path, api_url: &str, script: &str, args: &[&str]) -> String {
    let venv = tokio::task::spawn_blocking(prefect_testkit::ensure_venv)
        .await
        .unwrap()
        .unwrap();
    let output = Command::new(venv.join("bin/python"))
        .arg("-c")
        .arg(script)
        .args(args)
        .env("PREFECT_API_URL", api_url)
        .env("PREFECT_HOME", home)
        .env_remove("PREFECT__FLOW_RUN_ID")
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "python: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Creates `count` runs of the deployment `name` ("flow/deployment") with `parameters` through
/// Prefect's Python client (`run_deployment(timeout=0)`); their ids.
pub async fn python_runs(api_url: &str, name: &str, parameters: &str, count: usize) -> Vec<Uuid> {
    let script = "import json, sys\n\
        from prefect.deployments import run_deployment\n\
        for _ in range(int(sys.argv[3])):\n    \
            run = run_deployment(sys.argv[1], parameters=json.loads(sys.argv[2]), timeout=0)\n    \
            print(run.id)\n";
    python(api_url, script, &[name, parameters, &count.to_string()])
        .await
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

/// Creates `count` runs of the `serve` example's deployment (`rust-serve-example/example`) with
/// `parameters` through Prefect's Python client; their ids.
pub async fn example_runs(api_url: &str, parameters: &str, count: usize) -> Vec<Uuid> {
    python_runs(api_url, "rust-serve-example/example", parameters, count).await
}

/// Creates one run of the `serve` example's deployment with `parameters` through Prefect's Python
/// client and waits until it is RUNNING (at most 30 s); its id.
pub async fn start_example_run(client: &Client, parameters: &str) -> Uuid {
    let run = example_runs(client.api_url(), parameters, 1).await[0];
    wait_running(client, run, Duration::from_secs(30)).await;
    run
}

/// Waits until `run` is RUNNING (at most `within`).
pub async fn wait_running(client: &Client, run: Uuid, within: Duration) {
    client
        .flow_runs()
        .wait_for_state(run, &[StateType::Running], within)
        .await
        .unwrap();
}

/// Creates a run of `deployment` with `parameters`; its id.
pub async fn create_run_with(client: &Client, deployment: Uuid, parameters: serde_json::Value) -> Uuid {
    client
        .deployments()
        .create_run(deployment)
        .parameters(&parameters)
        .await
        .unwrap()
        .id
}

/// Shuts serving (or a worker) down and requires it to end cleanly.
pub async fn shut_down(serving: prefect_client::serve::Serving) {
    serving.shutdown();
    serving.wait().await.unwrap();
}

/// Cancels a run as Prefect's Python client does (`prefect flow-run cancel`: CANCELLING).
pub async fn python_cancel(api_url: &str, run: Uuid) {
    let script = "import asyncio, sys, uuid\n\
        from prefect.client.orchestration import get_client\n\
        from prefect.states import Cancelling\n\
        async def main():\n    \
            async with get_client() as client:\n        \
                await client.set_flow_run_state(uuid.UUID(sys.argv[1]), Cancelling())\n\
        asyncio.run(main())\n";
    python(api_url, script, &[&run.to_string()]).await;
}

/// Waits until every run is in a final state (at most `within`); the runs.
pub async fn wait_final(client: &Client, runs: &[Uuid], within: Duration) -> HashMap<Uuid, FlowRunResponse> {
    let started = tokio::time::Instant::now();
    let mut done = HashMap::new();
    loop {
        for id in runs {
            if done.contains_key(id) {
                continue;
            }
            let run = client.flow_runs().get(*id).await.unwrap();
            if run
                .state_type
                .as_ref()
                .is_some_and(prefect_client::resources::flow_runs::is_final)
            {
                done.insert(*id, run);
            }
        }
        if done.len() == runs.len() {
            return done;
        }
        if started.elapsed() > within {
            let left: Vec<_> = runs.iter().filter(|id| !done.contains_key(id)).collect();
            panic!("{} runs not final within {within:?}: {left:?}", left.len());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Reads the runs every 100 ms until all are COMPLETED or `within` passed: the most of them
/// found in a state `busy` at once, and whether they all completed.
pub async fn peak_until_completed(
    client: &Client,
    runs: &[Uuid],
    busy: impl Fn(&StateType) -> bool,
    within: Duration,
) -> (usize, bool) {
    let mut peak = 0;
    let started = tokio::time::Instant::now();
    loop {
        let mut running = 0;
        let mut done = 0;
        for id in runs {
            match client.flow_runs().get(*id).await.unwrap().state_type {
                Some(StateType::Completed) => done += 1,
                Some(state) if busy(&state) => running += 1,
                _ => {}
            }
        }
        peak = peak.max(running);
        if done == runs.len() {
            return (peak, true);
        }
        if started.elapsed() > within {
            return (peak, false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The message of a run's state, or "" without one.
pub fn state_message(run: &FlowRunResponse) -> String {
    run.state
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default()
}

/// The task runs of a flow run.
pub async fn task_runs_of(client: &Client, run: Uuid) -> Vec<prefect_client::types::TaskRun> {
    use futures_util::TryStreamExt;
    use prefect_client::query::{TaskRunFilter, TaskRunFilterFlowRunId, TaskRunQuery};
    client
        .task_runs()
        .stream(TaskRunQuery {
            task_runs: Some(TaskRunFilter {
                flow_run_id: Some(TaskRunFilterFlowRunId {
                    any: Some(vec![run]),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .try_collect()
        .await
        .unwrap()
}

/// The state types a run went through, oldest first.
pub async fn history(client: &Client, run: Uuid) -> Vec<(StateType, Option<String>)> {
    client
        .flow_runs()
        .states(run)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.type_, s.name))
        .collect()
}

/// A boxed error, for the flows of tests.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A server of this test's own (the example's deployment name is fixed), with the services
/// fast: expired leases freed every second, AwaitingConcurrencySlot runs back after a second.
pub fn own_server() -> LocalServerBuilder {
    LocalServer::builder()
        .env("PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS", "1")
        .env("PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS", "1")
}

/// Log lines of a run that say a row was done: one per task run executed.
pub async fn rows_logged(client: &Client, run: Uuid) -> usize {
    let logs: Vec<_> = client.flow_runs().logs(run).try_collect().await.unwrap();
    logs.iter().filter(|l| l.message.starts_with("row done")).count()
}

/// Creates the work pool `pool` as `prefect work-pool create --type process` does: with the
/// process worker's base job template (whose variables include `command`).
pub async fn create_process_pool(api_url: &str, pool: &str) {
    python(
        api_url,
        "import asyncio, sys\n\
         from prefect.client.orchestration import get_client\n\
         from prefect.client.schemas.actions import WorkPoolCreate\n\
         from prefect.workers.process import ProcessWorker\n\
         async def main():\n    \
             async with get_client() as client:\n        \
                 await client.create_work_pool(WorkPoolCreate(name=sys.argv[1], type='process', \
                     base_job_template=ProcessWorker.get_default_base_job_template()))\n\
         asyncio.run(main())\n",
        &[pool],
    )
    .await;
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct SleepParams {
    #[serde(default)]
    pub sleep_s: f64,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct RowsParams {
    pub rows: u64,
}

/// A flow that completes at once.
pub fn trivial(name: &str) -> RustFlow {
    RustFlow::without_parameters(name, |_ctx: RunContext| async move { Ok::<_, BoxError>(()) })
}

/// A flow with the parameter `rows` that returns it.
pub fn returning_rows(name: &str) -> RustFlow {
    RustFlow::new(name, |_ctx: RunContext, p: RowsParams| async move {
        Ok::<_, BoxError>(p.rows)
    })
}

/// Waits for `run` to end (at most `within`) and requires it COMPLETED.
pub async fn completes(client: &Client, run: Uuid, within: Duration) {
    let ended = wait_final(client, &[run], within).await;
    assert_eq!(
        ended[&run].state_type,
        Some(StateType::Completed),
        "{:?}",
        ended[&run].state
    );
}

/// A flow whose first attempt fails and whose later ones sleep `sleep`; its attempts so far.
pub fn failing_once_then_sleeping(
    name: &str,
    sleep: Duration,
) -> (RustFlow, std::sync::Arc<std::sync::atomic::AtomicU32>) {
    let attempts = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = attempts.clone();
    let flow = RustFlow::without_parameters(name, move |_ctx: RunContext| {
        let attempt = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            if attempt == 0 {
                return Err::<(), BoxError>("the first attempt fails".into());
            }
            tokio::time::sleep(sleep).await;
            Ok(())
        }
    });
    (flow, attempts)
}

/// Waits until `check` holds for the run (at most `within`, else panics naming `what`); the
/// run then.
pub async fn wait_for_run(
    client: &Client,
    run: Uuid,
    within: Duration,
    what: &str,
    check: impl Fn(&FlowRunResponse) -> bool,
) -> FlowRunResponse {
    let started = tokio::time::Instant::now();
    loop {
        let found = client.flow_runs().get(run).await.unwrap();
        if check(&found) {
            return found;
        }
        assert!(
            started.elapsed() < within,
            "{what} within {within:?}: {:?} {:?}",
            found.state_type,
            found.state_name
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Serves `flow` in this process with the deployment `spec`, and creates one run of it: the
/// serving handle and the run's id.
pub async fn serve_and_run(
    client: &Client,
    flow: &RustFlow,
    spec: prefect_client::resources::deployments::DeploymentSpec,
) -> (prefect_client::serve::Serving, Uuid) {
    let (serving, deployment) = serve(client, flow, spec).await;
    let run = client.deployments().create_run(deployment).await.unwrap();
    (serving, run.id)
}

/// Serves `flow` in this process with the deployment `spec`: the serving handle and the
/// deployment's id.
pub async fn serve(
    client: &Client,
    flow: &RustFlow,
    spec: prefect_client::resources::deployments::DeploymentSpec,
) -> (prefect_client::serve::Serving, Uuid) {
    serve_with(client, flow, spec, ServeSettings::default()).await
}

/// Serves `flow` in this process with the deployment `spec` and `settings`: the serving handle
/// and the deployment's id.
pub async fn serve_with(
    client: &Client,
    flow: &RustFlow,
    spec: prefect_client::resources::deployments::DeploymentSpec,
    settings: ServeSettings,
) -> (prefect_client::serve::Serving, Uuid) {
    let serving = client
        .serve([flow])
        .deployment(spec)
        .settings(settings)
        .start()
        .await
        .unwrap();
    let deployment = serving.deployments()[0].id;
    (serving, deployment)
}
