//! What a running flow's code sees, and what its task runs share: [`RunContext`], the run's
//! task counts and active task runs, and the run's page in Prefect's UI.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::task::TaskScope;
use crate::Client;
use crate::types::StateType;

/// The end a task run meant to report: its state and message.
pub(crate) type TaskEnd = (StateType, Option<String>);

/// What a running flow's code sees: its run, and task runs nested under it. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RunContext {
    pub(crate) shared: Arc<Shared>,
}

/// What every task of one flow run shares: the run, where its page is, its task runs.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) flow_run_id: Uuid,
    pub(crate) flow_name: String,
    pub(crate) url: String,
    /// Task runs per task name in this attempt of the flow run: each one's place.
    pub(crate) task_counts: TaskCounts,
    /// Task runs that started and have not ended.
    pub(crate) active_tasks: ActiveTasks,
}

impl Shared {
    /// The shared state of a new attempt of flow run `flow_run_id` of the flow `flow_name`.
    pub(crate) fn new(client: &Client, flow_run_id: Uuid, flow_name: &str) -> Shared {
        Shared {
            client: client.clone(),
            flow_run_id,
            flow_name: flow_name.to_string(),
            url: ui_url(client.api_url(), "flow-run", flow_run_id),
            task_counts: TaskCounts::default(),
            active_tasks: ActiveTasks::default(),
        }
    }
}

/// How many task runs of each name a flow run's attempt has started: a task run's place among
/// those of its name (its name's suffix, a persisted task's run-scoped key).
#[derive(Debug, Default)]
pub(crate) struct TaskCounts(Mutex<HashMap<String, u64>>);

impl TaskCounts {
    /// The place of the next task run named `name` (0 for the first).
    pub(crate) fn next(&self, name: &str) -> u64 {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(name.to_string()).or_default();
        let place = *count;
        *count += 1;
        place
    }

    /// Starts counting again, for a new attempt of the flow run.
    pub(crate) fn restart(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// The task runs of a flow run that started and have not ended, each with the end it meant to
/// report if reporting it failed: the task engine writes it, the flow run's end drains it and
/// ends what is left.
#[derive(Debug, Default)]
pub(crate) struct ActiveTasks(Mutex<HashMap<Uuid, Option<TaskEnd>>>);

impl ActiveTasks {
    /// Task run `id` started.
    pub(crate) fn started(&self, id: Uuid) {
        self.lock().insert(id, None);
    }

    /// Task run `id` ended (its end reported, or the server refused it).
    pub(crate) fn ended(&self, id: Uuid) {
        self.lock().remove(&id);
    }

    /// Task run `id` ended with `state` but could not report it: the flow run reports it.
    pub(crate) fn intend(&self, id: Uuid, state: StateType, message: Option<String>) {
        self.lock().insert(id, Some((state, message)));
    }

    /// Every task run still active, each with the end it meant to report; none after.
    pub(crate) fn drain(&self) -> Vec<(Uuid, Option<TaskEnd>)> {
        self.lock().drain().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Option<TaskEnd>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RunContext {
    /// The flow run's id.
    pub fn flow_run_id(&self) -> Uuid {
        self.shared.flow_run_id
    }

    /// The flow run's page in Prefect's UI.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// The client the run reports through.
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// A task run named `name`, nested under this flow run; set its options, then
    /// [`run`](TaskScope::run) it.
    pub fn task(&self, name: &str) -> TaskScope {
        TaskScope::new(self.clone(), name)
    }
}

/// A run's page in Prefect's UI: the API URL without `/api` for a self-hosted server; Prefect
/// Cloud's app URL for its workspaces.
pub(crate) fn ui_url(api_url: &str, kind: &str, id: Uuid) -> String {
    let api = api_url.trim_end_matches('/');
    if let Some(rest) = api.strip_prefix("https://api.prefect.cloud/api/accounts/") {
        let mut parts = rest.split('/');
        if let (Some(account), Some("workspaces"), Some(workspace)) =
            (parts.next(), parts.next(), parts.next())
        {
            return format!(
                "https://app.prefect.cloud/account/{account}/workspace/{workspace}/runs/{kind}/{id}"
            );
        }
    }
    let base = api.strip_suffix("/api").unwrap_or(api);
    format!("{base}/runs/{kind}/{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ui_urls_of_a_local_server_and_of_prefect_cloud() {
        let id = Uuid::nil();
        assert_eq!(
            ui_url("http://127.0.0.1:4200/api", "flow-run", id),
            format!("http://127.0.0.1:4200/runs/flow-run/{id}")
        );
        assert_eq!(
            ui_url(
                "https://api.prefect.cloud/api/accounts/A/workspaces/W/",
                "flow-run",
                id
            ),
            format!("https://app.prefect.cloud/account/A/workspace/W/runs/flow-run/{id}")
        );
    }
}
