//! Deployments: create, or apply from code ([`DeploymentSpec`]), get by id or
//! `flow/deployment` name, list, pause and resume, their schedules, and run.

mod spec;

pub use spec::{CollisionStrategy, DeploymentSpec, Schedule};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::OptionalExt;
use crate::query::DeploymentQuery;
use crate::resources::{InvalidField, call, check_name, json_object, send_on_await};
use crate::types::{
    DeploymentCreate, DeploymentFlowRunCreate, DeploymentResponse, DeploymentSchedule,
    DeploymentScheduleUpdate, FlowRunResponse, StateCreate, StateDetails, StateType,
};
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
///     .create_run(deployment.id)
///     .parameters(&serde_json::json!({ "date": "2026-11-24" }))
///     .idempotency_key("etl-2026-11-24")
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
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent); any other error of the request.
    pub async fn create(&self, flow_id: Uuid, name: &str) -> Result<DeploymentResponse, Error> {
        check_name("deployment name", name)?;
        let body = DeploymentCreate {
            concurrency_limit: None,
            concurrency_options: None,
            description: None,
            enforce_parameter_schema: false,
            entrypoint: None,
            flow_id,
            global_concurrency_limit_id: None,
            infrastructure_document_id: None,
            job_variables: Map::new(),
            labels: None,
            name: name.to_string(),
            parameter_openapi_schema: None,
            parameters: Map::new(),
            path: None,
            paused: false,
            pull_steps: None,
            schedules: Vec::new(),
            storage_document_id: None,
            tags: Vec::new(),
            version: None,
            version_info: None,
            work_pool_name: None,
            work_queue_name: None,
        };
        call!(self.client, create_deployment(&body))
    }

    /// The deployment with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no deployment has this id; any other error of the request.
    pub async fn get(&self, id: Uuid) -> Result<DeploymentResponse, Error> {
        call!(self.client, read_deployment(&id))
    }

    /// The deployment named `"flow-name/deployment-name"`, as Prefect's CLI names them.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent);
    /// [`Error::NotFound`] when there is none; any other error of the request.
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

    crate::resources::list_verbs!("deployments", DeploymentQuery => DeploymentResponse);

    /// Deletes the deployment with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no deployment has this id; any other error of the request.
    pub async fn delete(&self, id: Uuid) -> Result<(), Error> {
        call!(self.client, delete_deployment(&id))
    }

    /// Creates the deployment `spec` describes, or, for a deployment of that flow and name that
    /// exists, makes it what the spec says (the server upserts by flow and name): the flow is
    /// created when missing, the schedules become the spec's, the concurrency limit is removed
    /// when the spec sets none. For a worker deployment the job variables are checked against
    /// the work pool's variables first.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad option or a job variable the pool does not have
    /// (nothing sent, or nothing changed); [`Error::NotFound`] for a work pool that does not
    /// exist; [`Error::Validation`] for a schedule the server refuses (a bad time zone or cron
    /// expression); any other error of the requests.
    pub async fn apply(&self, spec: &DeploymentSpec) -> Result<DeploymentResponse, Error> {
        let flow = self.client.flows().create(&spec.flow).await?;
        let body = spec.create_body(flow.id)?;
        if let Some(pool) = &spec.work_pool {
            check_job_variables(self.client, pool, &spec.job_variables).await?;
        }
        let deployment = call!(self.client, create_deployment(&body))?;
        if spec.concurrency.is_none() && deployment.global_concurrency_limit.is_some() {
            // Set by an earlier apply and not by this one: the limit goes, as Prefect's runner
            // does it (deleting the limit clears the deployment's reference to it).
            let name = format!("deployment:{}", deployment.id);
            self.client
                .global_concurrency_limits()
                .delete_by_name(&name)
                .await
                .optional()?;
            return self.get(deployment.id).await;
        }
        Ok(deployment)
    }

    /// Pauses the deployment: no runs are scheduled (those scheduled already are removed).
    ///
    /// # Errors
    /// [`Error::NotFound`] for no such deployment; any other error of the request.
    pub async fn pause(&self, id: Uuid) -> Result<(), Error> {
        call!(self.client, pause_deployment(&id)).map(drop)
    }

    /// Resumes a paused deployment: its schedules schedule runs again.
    ///
    /// # Errors
    /// [`Error::NotFound`] for no such deployment; any other error of the request.
    pub async fn resume(&self, id: Uuid) -> Result<(), Error> {
        call!(self.client, resume_deployment(&id)).map(drop)
    }

    /// The schedules of the deployment with this id: list, add, switch on and off, remove.
    pub fn schedules(&self, id: Uuid) -> DeploymentSchedules<'a> {
        DeploymentSchedules {
            client: self.client,
            deployment: id,
        }
    }

    /// Creates a flow run of the deployment (Prefect's `run_deployment`), for its work pool's
    /// worker or its serving process to execute; set its options, then await it (or
    /// [`send`](CreateDeploymentRun::send) it).
    pub fn create_run(&self, id: Uuid) -> CreateDeploymentRun {
        CreateDeploymentRun {
            client: self.client.clone(),
            id,
            body: DeploymentFlowRunCreate::default(),
            invalid: None,
        }
    }
}

/// Checks job variables against the variables of the work pool `pool`'s base job template: a
/// key the pool does not have (a misspelt `comand`) is refused, since the server would keep it
/// and every worker ignore it. A pool whose template declares no variables takes any.
async fn check_job_variables(
    client: &Client,
    pool: &str,
    variables: &Map<String, Value>,
) -> Result<(), Error> {
    if variables.is_empty() {
        return Ok(());
    }
    let pool = client.work_pools().get_by_name(pool).await?;
    let known: Vec<&String> = pool
        .base_job_template
        .get("variables")
        .and_then(|v| v.get("properties"))
        .and_then(Value::as_object)
        .map(|properties| properties.keys().collect())
        .unwrap_or_default();
    if known.is_empty() {
        return Ok(());
    }
    if let Some(unknown) = variables.keys().find(|key| !known.contains(key)) {
        let known: Vec<&str> = known.iter().map(|k| k.as_str()).collect();
        return Err(Error::invalid(
            "job variables",
            format!(
                "{unknown:?} is not a variable of work pool {:?} (its variables: {}); the server would keep it and its workers ignore it",
                pool.name.to_string(),
                known.join(", ")
            ),
        ));
    }
    Ok(())
}

/// The schedules of one deployment; from [`Deployments::schedules`]. Applying a
/// [`DeploymentSpec`] again sets them all at once; these change one.
#[derive(Clone, Copy, Debug)]
pub struct DeploymentSchedules<'a> {
    client: &'a Client,
    deployment: Uuid,
}

impl DeploymentSchedules<'_> {
    /// The deployment's schedules.
    ///
    /// # Errors
    /// [`Error::NotFound`] for no such deployment; any other error of the request.
    pub async fn list(&self) -> Result<Vec<DeploymentSchedule>, Error> {
        call!(self.client, read_deployment_schedules(&self.deployment))
    }

    /// Adds a schedule.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an interval under a second (nothing sent);
    /// [`Error::Validation`] for a schedule the server refuses; [`Error::Conflict`] for a slug
    /// the deployment has; any other error of the request.
    pub async fn add(&self, schedule: &Schedule) -> Result<DeploymentSchedule, Error> {
        let body = vec![schedule.create_body()?];
        let mut created = call!(self.client, create_deployment_schedules(&self.deployment, &body))?;
        created
            .pop()
            .ok_or_else(|| Error::invalid("schedule", "the server created no schedule"))
    }

    /// Switches a schedule on or off.
    ///
    /// # Errors
    /// [`Error::NotFound`] for no such deployment or schedule; any other error of the request.
    pub async fn set_active(&self, schedule: Uuid, active: bool) -> Result<(), Error> {
        let body = DeploymentScheduleUpdate {
            active: Some(active),
            ..Default::default()
        };
        call!(
            self.client,
            update_deployment_schedule(&self.deployment, &schedule, &body)
        )
    }

    /// Removes a schedule (and the runs it scheduled that have not started).
    ///
    /// # Errors
    /// [`Error::NotFound`] for no such deployment or schedule; any other error of the request.
    pub async fn delete(&self, schedule: Uuid) -> Result<(), Error> {
        call!(
            self.client,
            delete_deployment_schedule(&self.deployment, &schedule)
        )
    }
}

/// A flow run of a deployment to create; from [`Deployments::create_run`]. An option given a value it
/// cannot take makes [`send`](CreateDeploymentRun::send) fail with [`Error::InvalidInput`], before
/// anything is sent.
#[derive(Debug, Clone)]
#[must_use = "await it (or call .send().await) to create the run"]
pub struct CreateDeploymentRun {
    client: Client,
    id: Uuid,
    body: DeploymentFlowRunCreate,
    /// The first option that was given a bad value.
    invalid: Option<InvalidField>,
}

impl CreateDeploymentRun {
    /// The flow's parameters, as any value serializing to a JSON object.
    pub fn parameters(mut self, parameters: &impl Serialize) -> Self {
        if let Some(object) = self.object("parameters", parameters) {
            self.body.parameters = object;
        }
        self
    }

    /// Infrastructure overrides for this run (the work pool's job variables), as any value
    /// serializing to a JSON object, each key one of the pool's variables (checked when sent,
    /// as [`Deployments::apply`] checks a deployment's).
    pub fn job_variables(mut self, variables: &impl Serialize) -> Self {
        if let Some(object) = self.object("job_variables", variables) {
            self.body.job_variables = Some(object);
        }
        self
    }

    /// `value` as a JSON object; else remembers why not (for `send` to report).
    fn object(&mut self, field: &'static str, value: &impl Serialize) -> Option<Map<String, Value>> {
        match json_object(field, value) {
            Ok(object) => Some(object),
            Err(invalid) => {
                self.invalid.get_or_insert(invalid);
                None
            }
        }
    }

    /// Tags of the run.
    pub fn tags(mut self, tags: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        self.body.tags = tags.into_iter().map(|t| t.as_ref().to_string()).collect();
        self
    }

    /// The run's name (the server makes one up otherwise).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.body.name = Some(name.into());
        self
    }

    /// When the run should start (default: now).
    pub fn scheduled_start(mut self, at: DateTime<Utc>) -> Self {
        self.body.state = Some(StateCreate {
            data: None,
            message: None,
            name: None,
            state_details: Some(StateDetails {
                scheduled_time: Some(at),
                ..Default::default()
            }),
            type_: StateType::Scheduled,
        });
        self
    }

    /// Makes the request safe to repeat: the server returns the run it already created with
    /// this key instead of a second one.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.body.idempotency_key = Some(key.into());
        self
    }

    /// Creates the flow run; it is scheduled, for a worker (or the API) to move on. Job
    /// variables, when given, are first checked against the variables of the deployment's work
    /// pool (the deployment and its pool are read for it).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for parameters or job variables that are not a JSON object, or a
    /// job variable the deployment's work pool does not have (nothing sent, the error names the
    /// key and the pool's variables); [`Error::NotFound`] for no such deployment;
    /// [`Error::Validation`] for parameters the deployment's enforced schema refuses; any error
    /// of the requests.
    pub async fn send(self) -> Result<FlowRunResponse, Error> {
        if let Some(invalid) = self.invalid {
            return Err(invalid.into());
        }
        if let Some(variables) = self.body.job_variables.as_ref().filter(|v| !v.is_empty()) {
            let deployment = self.client.deployments().get(self.id).await?;
            if let Some(pool) = &deployment.work_pool_name {
                check_job_variables(&self.client, pool, variables).await?;
            }
        }
        call!(self.client, create_flow_run_from_deployment(&self.id, &self.body))
    }
}

send_on_await! {
    CreateDeploymentRun => FlowRunResponse;
}
