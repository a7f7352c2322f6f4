//! Deployments: read by id or `flow/deployment` name, list, create, and run.

use chrono::{DateTime, Utc};
use futures_core::Stream;
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::error::unwrap_response;
use crate::resources::check_name;
use crate::resources::pagination::{STREAM_PAGE_SIZE, paginate, typed};
use crate::types::{DeploymentResponse, FlowRunResponse, ReadDeploymentsBody};
use crate::{Client, Error};

/// Deployments; from [`Client::deployments`].
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
/// use std::time::Duration;
///
/// let deployment = client.deployments().read_by_name("etl/nightly").await?;
/// let run = client
///     .deployments()
///     .run(deployment.id)
///     .parameters(&serde_json::json!({ "date": "2026-11-24" }))?
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
        unwrap_response(
            "create_deployment",
            self.client.raw().create_deployment(&body).await,
        )
        .await
    }

    /// Reads a deployment by id.
    pub async fn read(&self, id: Uuid) -> Result<DeploymentResponse, Error> {
        unwrap_response("read_deployment", self.client.raw().read_deployment(&id).await).await
    }

    /// Reads a deployment by `"flow-name/deployment-name"`, as Prefect's CLI names them.
    pub async fn read_by_name(&self, full_name: &str) -> Result<DeploymentResponse, Error> {
        let Some((flow, deployment)) = full_name.split_once('/') else {
            return Err(Error::invalid(
                "deployment name",
                format!("{full_name:?} has no '/'; use \"flow-name/deployment-name\""),
            ));
        };
        check_name("flow name", flow)?;
        check_name("deployment name", deployment)?;
        unwrap_response(
            "read_deployment_by_name",
            self.client.raw().read_deployment_by_name(flow, deployment).await,
        )
        .await
    }

    /// One page of deployments matching `filter` (its `limit` and `offset` apply).
    pub async fn filter(&self, filter: &ReadDeploymentsBody) -> Result<Vec<DeploymentResponse>, Error> {
        unwrap_response(
            "read_deployments",
            self.client.raw().read_deployments(filter).await,
        )
        .await
    }

    /// Every deployment matching `filter` (`ReadDeploymentsBody::default()` for all).
    pub fn stream(
        &self,
        filter: ReadDeploymentsBody,
    ) -> impl Stream<Item = Result<DeploymentResponse, Error>> + Send + use<> {
        let client = self.client.clone();
        paginate(STREAM_PAGE_SIZE, move |offset, limit| {
            let (client, mut page) = (client.clone(), filter.clone());
            page.offset = offset;
            page.limit = Some(i64::from(limit));
            async move { client.deployments().filter(&page).await }
        })
    }

    /// Starts a run of the deployment; set its options, then [`send`](RunDeployment::send).
    pub fn run(&self, id: Uuid) -> RunDeployment {
        RunDeployment {
            client: self.client.clone(),
            id,
            body: Map::new(),
        }
    }
}

/// A flow run of a deployment to create; from [`Deployments::run`].
#[derive(Debug, Clone)]
#[must_use = "call .send().await to create the run"]
pub struct RunDeployment {
    client: Client,
    id: Uuid,
    body: Map<String, Value>,
}

impl RunDeployment {
    /// The flow's parameters, as any value serializing to a JSON object.
    pub fn parameters(mut self, parameters: &impl Serialize) -> Result<Self, Error> {
        let value = serde_json::to_value(parameters)
            .map_err(|e| Error::invalid("parameters", format!("cannot be serialized: {e}")))?;
        if !value.is_object() {
            return Err(Error::invalid(
                "parameters",
                "must serialize to a JSON object of parameter names to values",
            ));
        }
        self.body.insert("parameters".into(), value);
        Ok(self)
    }

    /// Infrastructure overrides for this run (the work pool's job variables).
    pub fn job_variables(mut self, variables: &impl Serialize) -> Result<Self, Error> {
        let value = serde_json::to_value(variables)
            .map_err(|e| Error::invalid("job variables", format!("cannot be serialized: {e}")))?;
        if !value.is_object() {
            return Err(Error::invalid("job variables", "must serialize to a JSON object"));
        }
        self.body.insert("job_variables".into(), value);
        Ok(self)
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
        let body = typed("deployment run", Value::Object(self.body))?;
        unwrap_response(
            "create_flow_run_from_deployment",
            self.client
                .raw()
                .create_flow_run_from_deployment(&self.id, &body)
                .await,
        )
        .await
    }
}
