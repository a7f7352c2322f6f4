//! Whether what `apply` would send equals what the server has, both as the server keeps them.

use serde_json::{Map, Value};

use super::steps::PullStep;
use crate::types::DeploymentResponse;

/// The keys compared as they are, when the body has them (a key the body leaves out keeps the
/// server's value on an upsert, so it cannot differ).
const PLAIN: &[&str] = &[
    "flow_id",
    "description",
    "version",
    "paused",
    "enforce_parameter_schema",
    "parameter_openapi_schema",
    "entrypoint",
    "path",
    "parameters",
    "job_variables",
    "storage_document_id",
    "infrastructure_document_id",
    "work_pool_name",
    "work_queue_name",
];

/// Whether sending `body` (a create body) would leave `server` as it is. Schedules and the
/// concurrency limit are compared even when the body leaves them out, since an apply then
/// removes them; tags in any order; pull steps as typed steps; labels but the server's own
/// (`prefect.*` the body does not set). `version_info` is not compared: the server does not
/// send it back.
pub(super) fn unchanged(body: &Value, server: &DeploymentResponse) -> bool {
    let Ok(server) = serde_json::to_value(server) else {
        return false;
    };
    let plain = PLAIN
        .iter()
        .filter_map(|key| Some((key, body.get(*key)?)))
        .all(|(key, sent)| sent == server.get(*key).unwrap_or(&Value::Null));
    plain
        && schedules(body) == schedules(&server)
        && concurrency(body) == concurrency(&server)
        && body
            .get("tags")
            .is_none_or(|tags| sorted(tags) == sorted(&server["tags"]))
        && body
            .get("pull_steps")
            .is_none_or(|steps| pull_steps(steps) == pull_steps(&server["pull_steps"]))
        && body
            .get("labels")
            .is_none_or(|labels| labels == &own_labels(&server["labels"], labels))
}

/// Each schedule (of a body or of the server's deployment) as `(schedule, active, parameters,
/// slug)`, sorted by its JSON: the schedule's unset (null) fields, a `UTC` time zone and the
/// anchor left out (the server fills them in).
fn schedules(body: &Value) -> Vec<String> {
    let mut schedules: Vec<String> = body
        .get("schedules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|schedule| comparable(schedule, &schedule["schedule"]))
        .collect();
    schedules.sort();
    schedules
}

/// A schedule's comparable JSON, as text.
fn comparable(schedule: &Value, inner: &Value) -> String {
    let inner: Map<String, Value> = inner
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, value)| !(value.is_null() || key.as_str() == "timezone" && *value == "UTC"))
        .filter(|(key, _)| key.as_str() != "anchor_date")
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let empty = Value::Object(Map::new());
    let parameters = match &schedule["parameters"] {
        Value::Null => &empty,
        parameters => parameters,
    };
    serde_json::json!({
        "schedule": inner,
        "active": schedule.get("active").unwrap_or(&Value::Bool(true)),
        "parameters": parameters,
        "slug": schedule["slug"],
    })
    .to_string()
}

/// The limit and its options, of a body (`concurrency_limit`) or of the server's deployment
/// (`global_concurrency_limit.limit`); no options as the server's default (enqueue).
fn concurrency(body: &Value) -> (Value, Value) {
    let limit = match body.get("global_concurrency_limit") {
        Some(server) => server["limit"].clone(),
        None => body["concurrency_limit"].clone(),
    };
    if limit.is_null() {
        return (Value::Null, Value::Null);
    }
    let mut options: Map<String, Value> = body["concurrency_options"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, value)| !value.is_null())
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    options
        .entry("collision_strategy")
        .or_insert_with(|| Value::String("ENQUEUE".to_string()));
    (limit, Value::Object(options))
}

fn sorted(tags: &Value) -> Vec<String> {
    let mut tags: Vec<String> = tags
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|tag| tag.as_str().map(str::to_string))
        .collect();
    tags.sort();
    tags.dedup();
    tags
}

/// Pull steps read as typed steps and written back (a step's unset arguments sent as `null`
/// by another client are the same step).
fn pull_steps(steps: &Value) -> Value {
    match steps.as_array() {
        Some(steps) => Value::Array(
            steps
                .iter()
                .map(|step| PullStep::from_json(step).to_json())
                .collect(),
        ),
        None => Value::Array(Vec::new()),
    }
}

/// The server's labels without those of Prefect's own (`prefect.*`) that `sent` does not set.
fn own_labels(server: &Value, sent: &Value) -> Value {
    Value::Object(
        server
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(key, _)| !key.starts_with("prefect.") || sent.get(key.as_str()).is_some())
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn server(changes: Value) -> DeploymentResponse {
        let mut base = json!({
            "id": "6f1d4f7e-7c1b-4d4b-9d3a-0b1c2d3e4f50",
            "created": null, "updated": null,
            "flow_id": "6f1d4f7e-7c1b-4d4b-9d3a-0b1c2d3e4f51",
            "name": "nightly",
            "paused": false,
            "enforce_parameter_schema": false,
            "schedules": [{
                "id": "6f1d4f7e-7c1b-4d4b-9d3a-0b1c2d3e4f52", "created": null, "updated": null,
                "deployment_id": "6f1d4f7e-7c1b-4d4b-9d3a-0b1c2d3e4f50",
                "active": true, "max_scheduled_runs": null, "parameters": {}, "slug": null,
                "schedule": { "cron": "0 3 * * *", "timezone": "Europe/Paris", "day_or": true }
            }],
            "tags": ["b", "a"],
            "labels": { "prefect.flow.id": "6f1d4f7e-7c1b-4d4b-9d3a-0b1c2d3e4f51", "team": "data" },
            "pull_steps": [{ "prefect.deployments.steps.run_shell_script": { "script": "echo ready", "directory": null } }],
            "parameters": {}, "job_variables": {},
            "global_concurrency_limit": null, "concurrency_options": null,
        });
        for (key, value) in changes.as_object().unwrap() {
            base[key] = value.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn body() -> Value {
        json!({
            "flow_id": "6f1d4f7e-7c1b-4d4b-9d3a-0b1c2d3e4f51",
            "name": "nightly",
            "paused": false,
            "enforce_parameter_schema": false,
            "schedules": [{ "active": true, "parameters": {},
                            "schedule": { "cron": "0 3 * * *", "timezone": "Europe/Paris", "day_or": true } }],
            "tags": ["a", "b"],
            "labels": { "team": "data" },
            "pull_steps": [{ "prefect.deployments.steps.run_shell_script": { "script": "echo ready" } }],
            "version_info": { "type": "vcs:git", "version": "abc" },
        })
    }

    #[test]
    fn a_body_equal_to_what_the_server_keeps_is_unchanged() {
        assert!(unchanged(&body(), &server(json!({}))));
    }

    #[test]
    fn any_difference_the_server_would_take_is_a_change() {
        let differences = [
            json!({ "tags": ["a"] }),
            json!({ "paused": true }),
            json!({ "labels": { "team": "ops" } }),
            json!({ "pull_steps": [] }),
            json!({ "schedules": [] }),
            json!({ "description": "old" }),
            json!({ "global_concurrency_limit": { "id": "6f1d4f7e-7c1b-4d4b-9d3a-0b1c2d3e4f53", "name": "x", "created": null, "updated": null,
                    "limit": 2, "active": true, "active_slots": 0, "slot_decay_per_second": 0.0 } }),
        ];
        for difference in differences {
            let mut sent = body();
            if difference.get("description").is_some() {
                sent["description"] = json!("new");
            }
            assert!(!unchanged(&sent, &server(difference.clone())), "{difference}");
        }
        let mut no_tags = body();
        no_tags.as_object_mut().unwrap().remove("tags");
        assert!(
            unchanged(&no_tags, &server(json!({}))),
            "tags left out keep the server's"
        );
    }
}
