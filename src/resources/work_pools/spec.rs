//! A work pool as declared: [`WorkPoolSpec`], and the default base job template of a worker
//! type, found as Prefect's CLI finds it.

use serde_json::{Map, Value};

use crate::resources::{call, generated_name};
use crate::types::WorkPoolCreate;
use crate::{Client, Error};

/// The work pool type of Rust workers ([`Client::worker`](crate::Client::worker)).
pub const RUST_WORKER_TYPE: &str = "rust";

/// The work pool type of Prefect's process worker.
const PROCESS_WORKER_TYPE: &str = "process";
/// Prefect's process worker's default base job template, as the pinned release's
/// `ProcessWorker.get_default_base_job_template()` makes it (what `prefect work-pool create
/// --type process` sends; the server's worker metadata holds an older copy). Made with
/// `python -c 'import json; from prefect.workers.process import ProcessWorker;
/// print(json.dumps(ProcessWorker.get_default_base_job_template(), indent=2))'`.
const PROCESS_TEMPLATE: &str = include_str!("process_template.json");

/// The server's view of the workers it knows, with each type's default base job template.
const WORKER_METADATA_VIEW: &str = "aggregate-worker-metadata";

/// A work pool as it should be; applied with [`WorkPools::apply`](super::WorkPools::apply),
/// which creates it, changes it to match, or leaves it.
///
/// ```
/// use prefect_client::resources::work_pools::WorkPoolSpec;
///
/// let spec = WorkPoolSpec::new("etl", "process")
///     .description("nightly loads")
///     .concurrency_limit(3);
/// assert_eq!(spec.name(), "etl");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct WorkPoolSpec {
    name: String,
    pool_type: String,
    /// `None`: the worker type's default.
    base_job_template: Option<Map<String, Value>>,
    description: Option<String>,
    concurrency_limit: Option<u64>,
    paused: bool,
}

impl WorkPoolSpec {
    /// A pool `name` of workers of `pool_type` (`"process"`, `"docker"`, `"kubernetes"`, …),
    /// with that type's default base job template, no description, no concurrency limit, not
    /// paused.
    pub fn new(name: impl Into<String>, pool_type: impl Into<String>) -> WorkPoolSpec {
        WorkPoolSpec {
            name: name.into(),
            pool_type: pool_type.into(),
            base_job_template: None,
            description: None,
            concurrency_limit: None,
            paused: false,
        }
    }

    /// Its base job template instead of the worker type's default (`job_configuration` and
    /// `variables`, as `prefect work-pool get-default-base-job-template` prints it).
    pub fn base_job_template(mut self, template: Map<String, Value>) -> Self {
        self.base_job_template = Some(template);
        self
    }

    /// Its description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Runs of the pool at once, at most.
    pub fn concurrency_limit(mut self, limit: u64) -> Self {
        self.concurrency_limit = Some(limit);
        self
    }

    /// Paused (workers pick up none of its runs) or not (default).
    pub fn paused(mut self, paused: bool) -> Self {
        self.paused = paused;
        self
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The type of its workers.
    pub fn pool_type(&self) -> &str {
        &self.pool_type
    }

    /// The body that creates the pool, with the worker type's default template unless one was
    /// given.
    pub(crate) async fn create_body(&self, client: &Client) -> Result<WorkPoolCreate, Error> {
        let name = generated_name("work pool name", &self.name)?;
        if self.pool_type.trim().is_empty() {
            return Err(Error::invalid(
                "work pool type",
                "it is empty; give the type of the pool's workers (\"process\", \"docker\", \"kubernetes\", …)",
            ));
        }
        let base_job_template = match &self.base_job_template {
            Some(template) => template.clone(),
            None => default_base_job_template(client, &self.pool_type)
                .await?
                .unwrap_or_default(),
        };
        Ok(WorkPoolCreate {
            base_job_template,
            concurrency_limit: self.concurrency_limit,
            description: self.description.clone(),
            is_paused: self.paused,
            name,
            storage_configuration: None,
            type_: self.pool_type.clone(),
        })
    }
}

/// The default base job template of workers of `pool_type`, as Prefect's CLI finds it: the
/// worker's own where it is known here (Rust's, Prefect's process worker's), else the first
/// worker of that type in the server's worker metadata (which the server answers offline from a
/// copy it ships).
pub(crate) async fn default_base_job_template(
    client: &Client,
    pool_type: &str,
) -> Result<Option<Map<String, Value>>, Error> {
    if pool_type == RUST_WORKER_TYPE {
        return Ok(Some(rust_worker_job_template()));
    }
    if pool_type == PROCESS_WORKER_TYPE
        && let Ok(Value::Object(template)) = serde_json::from_str(PROCESS_TEMPLATE)
    {
        return Ok(Some(template));
    }
    let metadata = call!(client, read_view_content(WORKER_METADATA_VIEW))?;
    Ok(template_of(&metadata, pool_type))
}

/// The base job template of a Rust worker's pool: the runs' labels, which the worker records on
/// each run it executes.
pub(crate) fn rust_worker_job_template() -> Map<String, Value> {
    let template = serde_json::json!({
        "job_configuration": { "labels": "{{ labels }}" },
        "variables": {
            "type": "object",
            "properties": {
                "labels": {
                    "title": "Labels",
                    "description": "Labels of the flow runs a Rust worker executes.",
                    "type": "object",
                    "additionalProperties": { "type": "string" }
                }
            }
        }
    });
    match template {
        Value::Object(template) => template,
        _ => Map::new(),
    }
}

/// The template of the first worker of `pool_type` in the worker metadata (collections of
/// workers by name, each with its `type` and `default_base_job_configuration`).
fn template_of(metadata: &Map<String, Value>, pool_type: &str) -> Option<Map<String, Value>> {
    metadata
        .values()
        .filter_map(Value::as_object)
        .flat_map(|collection| collection.values())
        .filter_map(Value::as_object)
        .find(|worker| worker.get("type").and_then(Value::as_str) == Some(pool_type))
        .and_then(|worker| worker.get("default_base_job_configuration"))
        .and_then(Value::as_object)
        .cloned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_process_template_is_prefects_and_the_rust_one_offers_labels() {
        let Ok(Value::Object(process)) = serde_json::from_str::<Value>(PROCESS_TEMPLATE) else {
            panic!("the process template is a JSON object");
        };
        for variable in ["command", "env", "labels", "name", "stream_output", "working_dir"] {
            assert!(
                process["variables"]["properties"].get(variable).is_some(),
                "{variable}"
            );
            assert_eq!(
                process["job_configuration"][variable],
                format!("{{{{ {variable} }}}}")
            );
        }
        let rust = rust_worker_job_template();
        assert_eq!(rust["job_configuration"]["labels"], "{{ labels }}");
    }

    #[test]
    fn the_template_is_that_of_the_first_worker_of_the_type() {
        let metadata = json!({
            "prefect": {
                "process": { "type": "process", "default_base_job_configuration": { "job_configuration": { "command": "{{ command }}" } } },
            },
            "prefect-docker": {
                "docker": { "type": "docker", "default_base_job_configuration": { "variables": {} } },
            },
        });
        let metadata = metadata.as_object().unwrap();
        assert_eq!(
            template_of(metadata, "process").map(Value::Object),
            Some(json!({ "job_configuration": { "command": "{{ command }}" } }))
        );
        assert_eq!(
            template_of(metadata, "docker").map(Value::Object),
            Some(json!({ "variables": {} }))
        );
        assert_eq!(template_of(metadata, "ecs"), None);
    }
}
