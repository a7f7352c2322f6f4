//! Deployments: create, get by id or `flow/deployment` name, list, and run.

use chrono::{DateTime, Utc};
use futures_core::Stream;
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::resources::pagination::{self, typed};
use crate::resources::{call, check_name};
use crate::types::{DeploymentResponse, FlowRunResponse, ReadDeploymentsBody};
use crate::{Client, Error};

/// Deployments; from [`Client::deployments`].
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
/// use std::time::Duration;
///
/// let deployment = client.deployments().get_by_name("etl/nightly").await?;
/// let run = client
///     .deployments()
///     .run(deployment.id)
///     .parameters(&serde_json::json!({ "date": "2026-11-24" }))
///     .idempotency_key("etl-2026-11-24")
///     .send()
///     .await?;
/// let finished = client.flow_runs().wait_for_completion(run.id, Duration::from_secs(600)).await?;
/// println!("{:?}", finished.state_type);
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Deployments<'a> {
    client: &'a Client,
}

impl<'a> Deployments<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Deployments { client }
    }

    /// Creates (or updates, by flow and name) a deployment of `flow_id` with no schedule and no
    /// infrastructure: runs of it wait for a worker, or are driven through the API.
    pub async fn create(&self, flow_id: Uuid, name: &str) -> Result<DeploymentResponse, Error> {
        check_name("deployment name", name)?;
        let body = typed("deployment", json!({ "flow_id": flow_id, "name": name }))?;
        call!(self.client, create_deployment(&body))
    }

    /// The deployment with this id.
    pub async fn get(&self, id: Uuid) -> Result<DeploymentResponse, Error> {
        call!(self.client, read_deployment(&id))
    }

    /// The deployment named `"flow-name/deployment-name"`, as Prefect's CLI names them.
    pub async fn get_by_name(&self, full_name: &str) -> Result<DeploymentResponse, Error> {
        let Some((flow, deployment)) = full_name.split_once('/') else {
            return Err(Error::invalid(
                "deployment name",
                format!("{full_name:?} has no '/'; use \"flow-name/deployment-name\""),
            ));
        };
        check_name("flow name", flow)?;
        check_name("deployment name", deployment)?;
        call!(self.client, read_deployment_by_name(flow, deployment))
    }

    /// One page of deployments matching `filter` (its `limit`, at most 200, and `offset` apply).
    pub async fn list_page(&self, filter: &ReadDeploymentsBody) -> Result<Vec<DeploymentResponse>, Error> {
        pagination::page(self.client, filter).await
    }

    /// Every deployment matching `filter` (`ReadDeploymentsBody::default()` for all).
    pub fn stream(
        &self,
        filter: ReadDeploymentsBody,
    ) -> impl Stream<Item = Result<DeploymentResponse, Error>> + Send + use<> {
        pagination::stream(self.client, filter)
    }

    /// Starts a run of the deployment; set its options, then [`send`](RunDeployment::send).
    pub fn run(&self, id: Uuid) -> RunDeployment {
        RunDeployment {
            client: self.client.clone(),
            id,
            body: Map::new(),
            invalid: None,
        }
    }
}

/// A flow run of a deployment to create; from [`Deployments::run`]. An option given a value it
/// cannot take makes [`send`](RunDeployment::send) fail with [`Error::InvalidInput`], before
/// anything is sent.
#[derive(Debug, Clone)]
#[must_use = "call .send().await to create the run"]
pub struct RunDeployment {
    client: Client,
    id: Uuid,
    body: Map<String, Value>,
    /// The first option that was given a bad value.
    invalid: Option<(&'static str, String)>,
}

impl RunDeployment {
    /// The flow's parameters, as any value serializing to a JSON object.
    pub fn parameters(self, parameters: &impl Serialize) -> Self {
        self.object("parameters", parameters)
    }

    /// Infrastructure overrides for this run (the work pool's job variables), as any value
    /// serializing to a JSON object.
    pub fn job_variables(self, variables: &impl Serialize) -> Self {
        self.object("job_variables", variables)
    }

    /// Sets `field` to `value`, which must serialize to a JSON object; else remembers why not.
    fn object(mut self, field: &'static str, value: &impl Serialize) -> Self {
        let problem = match serde_json::to_value(value) {
            Ok(value @ Value::Object(_)) => {
                self.body.insert(field.into(), value);
                return self;
            }
            Ok(_) => "must serialize to a JSON object of names to values".to_string(),
            Err(e) => format!("cannot be serialized: {e}"),
        };
        self.invalid.get_or_insert((field, problem));
        self
    }

    /// Tags of the run.
    pub fn tags<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tags: I) -> Self {
        let tags: Vec<String> = tags.into_iter().map(Into::into).collect();
        self.body.insert("tags".into(), json!(tags));
        self
    }

    /// The run's name (the server makes one up otherwise).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.body.insert("name".into(), json!(name.into()));
        self
    }

    /// When the run should start (default: now).
    pub fn scheduled_start(mut self, at: DateTime<Utc>) -> Self {
        self.body.insert(
            "state".into(),
            json!({ "type": "SCHEDULED", "state_details": { "scheduled_time": at } }),
        );
        self
    }

    /// Makes the request safe to repeat: the server returns the run it already created with
    /// this key instead of a second one.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.body.insert("idempotency_key".into(), json!(key.into()));
        self
    }

    /// Creates the flow run; it is scheduled, for a worker (or the API) to move on.
    pub async fn send(self) -> Result<FlowRunResponse, Error> {
        if let Some((what, problem)) = self.invalid {
            return Err(Error::invalid(what, problem));
        }
        let body = typed("deployment run", Value::Object(self.body))?;
        call!(self.client, create_flow_run_from_deployment(&self.id, &body))
    }
}
