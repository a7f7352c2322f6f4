//! Deployments: create, or apply from code ([`DeploymentSpec`]), get by id or
//! `flow/deployment` name, list, pause and resume, their schedules, and run.

mod compare;
mod spec;
mod steps;

pub use spec::{CollisionStrategy, DeploymentSpec, DeploymentTrigger, Schedule, VersionInfo};
pub use steps::{
    BlockReference, BucketPull, Common, GitClone, PipInstallRequirements, PullStep, RunShellScript,
    SetWorkingDirectory,
};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use reqwest::Method;

use crate::OptionalExt;
use crate::query::DeploymentQuery;
use crate::resources::automations::{
    Action, Automation, AutomationSpec, Target, decode, exchange, json_body,
};
use crate::resources::{Applied, Change, InvalidField, call, check_name, json_object, send_on_await};
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

    /// Makes the deployment `spec` names (by flow and name) what the spec says: creates it when
    /// there is none ([`Change::Created`]), sends the spec when the deployment differs
    /// ([`Change::Updated`]), and writes nothing when it is as the spec says
    /// ([`Change::Unchanged`]). The flow is created when missing, the schedules become the
    /// spec's, the concurrency limit is removed when the spec sets none, and the automations the
    /// deployment owns become its [triggers](DeploymentSpec::trigger) (deleted and created
    /// again when they differ, as Prefect's `deploy` does). For a worker deployment the job
    /// variables are checked against the work pool's variables first.
    ///
    /// "As the spec says" compares what would be sent with what the server has, both as the
    /// server keeps them: schedules by their schedule, active, parameters and slug (in any
    /// order, an anchor or time zone the server filled in aside), tags in any order, pull
    /// steps, labels but Prefect's own, and every other field the spec sets. A field the spec
    /// leaves unset (description, version, tags, work pool) keeps the server's value and is
    /// not compared; nor is the version info, which the server does not send back.
    ///
    /// ```no_run
    /// # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
    /// use prefect_client::resources::deployments::{DeploymentSpec, PullStep, RunShellScript, Schedule};
    ///
    /// let spec = DeploymentSpec::new("etl", "nightly")
    ///     .schedule(Schedule::cron("0 3 * * *").timezone("Europe/Paris"))
    ///     .work_pool("process")
    ///     .pull_step(PullStep::set_working_directory("/opt/etl"))
    ///     .pull_step(RunShellScript::new("make deps"));
    /// let applied = client.deployments().apply(&spec).await?;
    /// println!("{} {}", applied.object.id, applied.change); // "… created", then "… unchanged"
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad option or a job variable the pool does not have
    /// (nothing sent, or nothing changed); [`Error::NotFound`] for a work pool that does not
    /// exist; [`Error::Validation`] for a schedule the server refuses (a bad time zone or cron
    /// expression); any other error of the requests.
    pub async fn apply(&self, spec: &DeploymentSpec) -> Result<Applied<DeploymentResponse>, Error> {
        spec.create_body(Uuid::nil())?;
        let flow = match self.client.flows().get_by_name(&spec.flow).await.optional()? {
            Some(flow) => flow,
            None => self.client.flows().create(&spec.flow).await?,
        };
        let body = spec.body(flow.id)?;
        if let Some(pool) = &spec.work_pool {
            check_job_variables(self.client, pool, &spec.job_variables).await?;
        }
        let existing = call!(self.client, read_deployment_by_name(&spec.flow, &spec.name)).optional()?;
        let change = match &existing {
            None => Change::Created,
            Some(existing) => {
                let owned = self.owned_automations(existing.id).await?;
                if compare::unchanged(&body, existing)
                    && same_automations(&owned, &spec.automations(existing.id))
                {
                    return Ok(Applied::new(existing.clone(), Change::Unchanged));
                }
                Change::Updated
            }
        };
        let answer = exchange(
            self.client,
            "create_deployment",
            Method::POST,
            "deployments/",
            Some(json_body(&body)?),
        )
        .await?;
        let mut deployment: DeploymentResponse = decode("create_deployment", &answer)?;
        if spec.concurrency.is_none() && deployment.global_concurrency_limit.is_some() {
            // Set by an earlier apply and not by this one: the limit goes, as Prefect's runner
            // does it (deleting the limit clears the deployment's reference to it).
            let name = format!("deployment:{}", deployment.id);
            self.client
                .global_concurrency_limits()
                .delete_by_name(&name)
                .await
                .optional()?;
            deployment = self.get(deployment.id).await?;
        }
        let wanted = spec.automations(deployment.id);
        let owned = match change {
            Change::Created => Vec::new(),
            _ => self.owned_automations(deployment.id).await?,
        };
        if !same_automations(&owned, &wanted) {
            let owner = owner(deployment.id);
            let automations = self.client.automations();
            if !owned.is_empty() {
                automations.delete_owned(&owner).await?;
            }
            for automation in &wanted {
                automations.create_owned(automation, &owner).await?;
            }
        }
        Ok(Applied::new(deployment, change))
    }

    /// The automations that are the deployment `id`'s triggers, sorted by name: those related
    /// to it that run it. The server does not say which of them the deployment owns, so an
    /// automation made apart that runs this deployment counts too.
    async fn owned_automations(&self, id: Uuid) -> Result<Vec<Automation>, Error> {
        let route = format!("automations/related-to/{}", owner(id));
        let answer = exchange(
            self.client,
            "read_automations_related_to_resource",
            Method::GET,
            &route,
            None,
        )
        .await?;
        let related: Vec<Automation> = decode("read_automations_related_to_resource", &answer)?;
        let runs_it = |action: &Action| matches!(action, Action::RunDeployment(run) if run.target == Target::Selected(id));
        let mut owned: Vec<Automation> = related
            .into_iter()
            .filter(|automation| automation.spec.all_actions().any(|(_, action)| runs_it(action)))
            .collect();
        owned.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        Ok(owned)
    }

    /// Changes some fields of the deployment with this id (Prefect's `DeploymentUpdate`): set
    /// those to change, then await it (or [`send`](UpdateDeployment::send) it). Only what is
    /// set is sent; the rest stays as the server has it.
    ///
    /// ```no_run
    /// # async fn demo(client: prefect_client::Client, id: uuid::Uuid) -> Result<(), prefect_client::Error> {
    /// client.deployments().update(id).description("Loads last night's rows").tags(["etl"]).await?;
    /// # Ok(()) }
    /// ```
    pub fn update(&self, id: Uuid) -> UpdateDeployment {
        UpdateDeployment {
            client: self.client.clone(),
            id,
            body: Map::new(),
            invalid: None,
        }
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

/// The resource that owns a deployment's automations, as Prefect names it.
fn owner(id: Uuid) -> String {
    format!("prefect.deployment.{id}")
}

/// Whether the automations a deployment owns are those its spec wants (as the server keeps
/// them; `owned` sorted by name).
fn same_automations(owned: &[Automation], wanted: &[AutomationSpec]) -> bool {
    let mut wanted: Vec<AutomationSpec> = wanted.iter().map(AutomationSpec::normalized).collect();
    wanted.sort_by(|a, b| a.name.cmp(&b.name));
    owned.len() == wanted.len()
        && owned
            .iter()
            .zip(&wanted)
            .all(|(owned, wanted)| &owned.spec.normalized() == wanted)
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

/// Changes to a deployment; from [`Deployments::update`]. An option given a value it cannot
/// take makes [`send`](UpdateDeployment::send) fail with [`Error::InvalidInput`], before anything
/// is sent.
#[derive(Debug, Clone)]
#[must_use = "await it (or call .send().await) to update the deployment"]
pub struct UpdateDeployment {
    client: Client,
    id: Uuid,
    /// The fields set, as sent.
    body: Map<String, Value>,
    /// The first option that was given a bad value.
    invalid: Option<InvalidField>,
}

impl UpdateDeployment {
    fn set(mut self, field: &str, value: Value) -> Self {
        self.body.insert(field.to_string(), value);
        self
    }

    fn set_object(mut self, field: &'static str, value: &impl Serialize) -> Self {
        match json_object(field, value) {
            Ok(object) => self.set(field, Value::Object(object)),
            Err(invalid) => {
                self.invalid.get_or_insert(invalid);
                self
            }
        }
    }

    /// Its description.
    pub fn description(self, description: impl Into<String>) -> Self {
        self.set("description", Value::String(description.into()))
    }

    /// Its version.
    pub fn version(self, version: impl Into<String>) -> Self {
        self.set("version", Value::String(version.into()))
    }

    /// Its tags (replacing all of them).
    pub fn tags(self, tags: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        let tags = tags
            .into_iter()
            .map(|t| Value::String(t.as_ref().to_string()))
            .collect();
        self.set("tags", Value::Array(tags))
    }

    /// Default parameters of its runs (replacing them): any value serializing to a JSON object.
    pub fn parameters(self, parameters: &impl Serialize) -> Self {
        self.set_object("parameters", parameters)
    }

    /// Job variables for its work pool's workers (replacing them): any value serializing to a
    /// JSON object.
    pub fn job_variables(self, variables: &impl Serialize) -> Self {
        self.set_object("job_variables", variables)
    }

    /// Paused (no scheduled runs) or not.
    pub fn paused(self, paused: bool) -> Self {
        self.set("paused", Value::Bool(paused))
    }

    /// The work pool its runs go to.
    pub fn work_pool(self, pool: impl Into<String>) -> Self {
        self.set("work_pool_name", Value::String(pool.into()))
    }

    /// The work pool's queue its runs go to.
    pub fn work_queue(self, queue: impl Into<String>) -> Self {
        self.set("work_queue_name", Value::String(queue.into()))
    }

    /// Its pull steps (replacing them).
    pub fn pull_steps(self, steps: impl IntoIterator<Item = PullStep>) -> Self {
        let steps = steps.into_iter().map(|step| step.to_json()).collect();
        self.set("pull_steps", Value::Array(steps))
    }

    /// Its entrypoint.
    pub fn entrypoint(self, entrypoint: impl Into<String>) -> Self {
        self.set("entrypoint", Value::String(entrypoint.into()))
    }

    /// Its path.
    pub fn path(self, path: impl Into<String>) -> Self {
        self.set("path", Value::String(path.into()))
    }

    /// Its schedules (replacing all of them).
    pub fn schedules(mut self, schedules: impl IntoIterator<Item = Schedule>) -> Self {
        let mut sent = Vec::new();
        for schedule in schedules {
            match schedule.create_body() {
                Ok(body) => sent.push(serde_json::to_value(body).unwrap_or_default()),
                Err(error) => {
                    let invalid = match error {
                        Error::InvalidInput { what, message } => InvalidField::new(what, message),
                        other => InvalidField::new("schedule", other.to_string()),
                    };
                    self.invalid.get_or_insert(invalid);
                }
            }
        }
        self.set("schedules", Value::Array(sent))
    }

    /// Sends the fields set (`PATCH /deployments/{id}`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a value an option could not take (nothing sent);
    /// [`Error::NotFound`] for no such deployment; [`Error::Validation`] for a value the server
    /// refuses; any other error of the request.
    pub async fn send(self) -> Result<(), Error> {
        if let Some(invalid) = self.invalid {
            return Err(invalid.into());
        }
        let route = format!("deployments/{}", self.id);
        exchange(
            &self.client,
            "update_deployment",
            Method::PATCH,
            &route,
            Some(json_body(&self.body)?),
        )
        .await
        .map(drop)
    }
}

send_on_await! {
    CreateDeploymentRun => FlowRunResponse;
    UpdateDeployment => ();
}
