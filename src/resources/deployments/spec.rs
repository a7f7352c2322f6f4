//! Deployments from code: [`DeploymentSpec`] (everything Prefect's `serve()` and `deploy()` set)
//! and [`Schedule`], applied with [`Deployments::apply`](super::Deployments::apply).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use uuid::Uuid;

use super::steps::PullStep;
use crate::Error;
use crate::resources::automations::{AutomationSpec, RunDeployment, Trigger};
use crate::resources::{InvalidField, json_object};
use crate::types;

/// A deployment as code says it should be: applied with
/// [`Deployments::apply`](super::Deployments::apply), which creates it or, for a deployment of
/// that flow and name that exists, updates it.
///
/// Applying again makes the deployment what the spec says for every field it sets; its
/// schedules are the spec's (added, changed and removed to match), and its concurrency limit is
/// removed when the spec sets none. A field the spec leaves unset (description, version, tags,
/// work pool) keeps its value on the server.
///
/// ```
/// use std::time::Duration;
/// use prefect_client::resources::deployments::{CollisionStrategy, DeploymentSpec, Schedule};
///
/// let spec = DeploymentSpec::new("etl", "nightly")
///     .schedule(Schedule::cron("0 3 * * *").timezone("Europe/Berlin"))
///     .schedule(Schedule::interval(Duration::from_secs(3600)).active(false))
///     .parameters(&serde_json::json!({ "rows": 500 }))
///     .tags(["etl"])
///     .concurrency_limit(1, CollisionStrategy::Enqueue)
///     .description("Loads last night's rows");
/// # let _ = spec;
/// ```
#[derive(Debug, Clone)]
#[must_use = "apply it with client.deployments().apply(spec)"]
pub struct DeploymentSpec {
    pub(crate) flow: String,
    pub(crate) name: String,
    pub(crate) schedules: Vec<Schedule>,
    pub(crate) parameters: Map<String, Value>,
    pub(crate) parameter_schema: Option<Map<String, Value>>,
    pub(crate) enforce_parameter_schema: Option<bool>,
    pub(crate) tags: Vec<String>,
    pub(crate) description: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) concurrency: Option<(u64, CollisionStrategy, Option<Duration>)>,
    pub(crate) paused: bool,
    pub(crate) work_pool: Option<String>,
    pub(crate) work_queue: Option<String>,
    pub(crate) job_variables: Map<String, Value>,
    pub(crate) entrypoint: Option<String>,
    pub(crate) pull_steps: Option<Vec<PullStep>>,
    pub(crate) path: Option<String>,
    pub(crate) labels: Option<Map<String, Value>>,
    pub(crate) version_info: Option<VersionInfo>,
    pub(crate) storage_document_id: Option<Uuid>,
    pub(crate) infrastructure_document_id: Option<Uuid>,
    pub(crate) triggers: Vec<DeploymentTrigger>,
    /// The first option given a value it cannot take, for `apply` to report.
    pub(crate) invalid: Option<InvalidField>,
}

/// What the server does with a run of a deployment whose concurrency limit is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CollisionStrategy {
    /// The run waits, scheduled again ("AwaitingConcurrencySlot"), until a slot is free.
    #[default]
    Enqueue,
    /// The run is cancelled.
    CancelNew,
}

impl DeploymentSpec {
    /// The deployment `name` of the flow `flow` (created too when it does not exist).
    pub fn new(flow: &str, name: &str) -> DeploymentSpec {
        DeploymentSpec {
            flow: flow.to_string(),
            name: name.to_string(),
            schedules: Vec::new(),
            parameters: Map::new(),
            parameter_schema: None,
            enforce_parameter_schema: None,
            tags: Vec::new(),
            description: None,
            version: None,
            concurrency: None,
            paused: false,
            work_pool: None,
            work_queue: None,
            job_variables: Map::new(),
            entrypoint: None,
            pull_steps: None,
            path: None,
            labels: None,
            version_info: None,
            storage_document_id: None,
            infrastructure_document_id: None,
            triggers: Vec::new(),
            invalid: None,
        }
    }

    /// The flow's name.
    pub fn flow_name(&self) -> &str {
        &self.flow
    }

    /// The deployment's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds a schedule; the deployment's schedules are the spec's.
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.schedules.push(schedule);
        self
    }

    /// Default parameters of its runs: any value serializing to a JSON object.
    pub fn parameters(mut self, parameters: &impl Serialize) -> Self {
        if let Some(object) = self.object("parameters", parameters) {
            self.parameters = object;
        }
        self
    }

    /// The JSON Schema of the flow's parameters (`parameter_openapi_schema`), from which
    /// Prefect's UI builds the form of a run. A [`RustFlow`](crate::serve::RustFlow)'s
    /// deployment has its parameter type's.
    pub fn parameter_schema(mut self, schema: Map<String, Value>) -> Self {
        self.parameter_schema = Some(schema);
        self
    }

    /// Whether the server refuses runs whose parameters do not fit the schema (default: true
    /// when there is a schema, as Prefect's `serve()`).
    pub fn enforce_parameter_schema(mut self, enforce: bool) -> Self {
        self.enforce_parameter_schema = Some(enforce);
        self
    }

    /// The deployment's tags (its runs carry them).
    pub fn tags(mut self, tags: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        self.tags = tags.into_iter().map(|t| t.as_ref().to_string()).collect();
        self
    }

    /// Its description (markdown, shown in the UI).
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Its version.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// At most `limit` runs of the deployment at once, across every process; `strategy` says
    /// what happens to a run while the limit is full.
    pub fn concurrency_limit(mut self, limit: u64, strategy: CollisionStrategy) -> Self {
        self.concurrency = Some((limit, strategy, None));
        self
    }

    /// How long a run may hold its deployment slot without a process renewing it (the server's
    /// default: 300 s): a process that dies frees the slot after this.
    pub fn concurrency_grace_period(mut self, grace: Duration) -> Self {
        if let Some((_, _, period)) = &mut self.concurrency {
            *period = Some(grace);
        } else {
            self.invalid.get_or_insert(InvalidField::new(
                "concurrency grace period",
                "set concurrency_limit first: the grace period is the limit's",
            ));
        }
        self
    }

    /// Creates it paused (no scheduled runs) or not (default).
    pub fn paused(mut self, paused: bool) -> Self {
        self.paused = paused;
        self
    }

    /// Runs go to this work pool's workers (a worker deployment); without one, the deployment
    /// is served by a process (`client.serve(..)`).
    pub fn work_pool(mut self, pool: impl Into<String>) -> Self {
        self.work_pool = Some(pool.into());
        self
    }

    /// The work pool's queue its runs go to (default: the pool's default queue).
    pub fn work_queue(mut self, queue: impl Into<String>) -> Self {
        self.work_queue = Some(queue.into());
        self
    }

    /// Job variables for the work pool's workers (a `command` for Prefect's process worker,
    /// an image for Docker or Kubernetes): any value serializing to a JSON object, each key one
    /// of the pool's variables (checked when applied).
    pub fn job_variables(mut self, variables: &impl Serialize) -> Self {
        if let Some(object) = self.object("job variables", variables) {
            self.job_variables = object;
        }
        self
    }

    /// Its entrypoint, as shown in the UI.
    pub fn entrypoint(mut self, entrypoint: impl Into<String>) -> Self {
        self.entrypoint = Some(entrypoint.into());
        self
    }

    /// Adds a pull step: what a worker does, in order, before it runs the flow (clone the
    /// code, move into its directory, install its requirements). Without any, the deployment
    /// keeps the pull steps it has.
    pub fn pull_step(mut self, step: impl Into<PullStep>) -> Self {
        self.pull_steps.get_or_insert_with(Vec::new).push(step.into());
        self
    }

    /// The pull steps, replacing those added before (none: the deployment has no pull steps).
    pub fn pull_steps(mut self, steps: impl IntoIterator<Item = PullStep>) -> Self {
        self.pull_steps = Some(steps.into_iter().collect());
        self
    }

    /// The directory the flow runs in, for a worker without pull steps.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Adds a label (its value a string, number or boolean); Prefect's own labels
    /// (`prefect.flow.id`) are the server's.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        let value = value.into();
        if value.is_object() || value.is_array() || value.is_null() {
            self.invalid.get_or_insert(InvalidField::new(
                "deployment label",
                format!("{value}; a label's value is a string, a number or a boolean"),
            ));
        } else {
            self.labels.get_or_insert_with(Map::new).insert(key.into(), value);
        }
        self
    }

    /// What version of the code it runs, with where it comes from (sent with the deployment;
    /// Prefect's server does not send it back, so it is not compared by
    /// [`apply`](super::Deployments::apply)).
    pub fn version_info(mut self, info: VersionInfo) -> Self {
        self.version_info = Some(info);
        self
    }

    /// The storage block document its code is read from (Prefect 2's deployments).
    pub fn storage_document_id(mut self, id: Uuid) -> Self {
        self.storage_document_id = Some(id);
        self
    }

    /// The infrastructure block document its runs start on (Prefect 2's deployments).
    pub fn infrastructure_document_id(mut self, id: Uuid) -> Self {
        self.infrastructure_document_id = Some(id);
        self
    }

    /// Adds a trigger: an automation, owned by the deployment, that runs it when `trigger`
    /// fires, as Prefect's `deploy` creates a deployment's `triggers` (named
    /// `<deployment>__automation_<n>` unless [`DeploymentTrigger::name`] says otherwise).
    /// The deployment's automations are the spec's: those it owns are replaced when they
    /// differ.
    pub fn trigger(mut self, trigger: impl Into<DeploymentTrigger>) -> Self {
        self.triggers.push(trigger.into());
        self
    }

    /// `value` as a JSON object; else remembers why not (for `apply` to report).
    fn object(&mut self, what: &'static str, value: &impl Serialize) -> Option<Map<String, Value>> {
        match json_object(what, value) {
            Ok(object) => Some(object),
            Err(invalid) => {
                self.invalid.get_or_insert(invalid);
                None
            }
        }
    }

    /// The create body for the flow `flow_id`.
    pub(crate) fn create_body(&self, flow_id: uuid::Uuid) -> Result<types::DeploymentCreate, Error> {
        if let Some(invalid) = &self.invalid {
            return Err(invalid.clone().into());
        }
        crate::resources::check_name("deployment name", &self.name)?;
        let schedules = self
            .schedules
            .iter()
            .map(Schedule::create_body)
            .collect::<Result<Vec<_>, Error>>()?;
        let concurrency_limit = match self.concurrency {
            Some((limit, _, _)) => Some(std::num::NonZeroU64::new(limit).ok_or_else(|| {
                Error::invalid(
                    "deployment concurrency limit",
                    "0; a deployment's limit is at least 1 (pause the deployment to run none)",
                )
            })?),
            None => None,
        };
        let concurrency_options = self
            .concurrency
            .map(|(_, strategy, grace)| types::ConcurrencyOptions {
                collision_strategy: match strategy {
                    CollisionStrategy::Enqueue => types::ConcurrencyLimitStrategy::Enqueue,
                    CollisionStrategy::CancelNew => types::ConcurrencyLimitStrategy::CancelNew,
                },
                grace_period_seconds: grace.map(|g| g.as_secs().clamp(60, 86_400) as i64),
            });
        Ok(types::DeploymentCreate {
            concurrency_limit,
            concurrency_options,
            description: self.description.clone(),
            enforce_parameter_schema: self
                .enforce_parameter_schema
                .unwrap_or(self.parameter_schema.is_some()),
            entrypoint: self.entrypoint.clone(),
            flow_id,
            global_concurrency_limit_id: None,
            infrastructure_document_id: None,
            job_variables: self.job_variables.clone(),
            labels: None,
            name: self.name.clone(),
            parameter_openapi_schema: self.parameter_schema.clone(),
            parameters: self.parameters.clone(),
            path: None,
            paused: self.paused,
            pull_steps: None,
            schedules,
            storage_document_id: None,
            tags: self.tags.clone(),
            version: self.version.clone(),
            version_info: None,
            work_pool_name: self.work_pool.clone(),
            work_queue_name: self.work_queue.clone(),
        })
    }
}

impl DeploymentSpec {
    /// The spec of a deployment as the server has it (`flow_name` is its flow's name, which
    /// the deployment does not carry): applied back, it reports
    /// [`Change::Unchanged`](crate::resources::Change::Unchanged). For tools that move
    /// deployments between servers or into code. The deployment's triggers (automations it
    /// owns) are not read; add them with [`trigger`](Self::trigger).
    ///
    /// ```no_run
    /// # async fn demo(client: prefect_client::Client, other: prefect_client::Client) -> Result<(), prefect_client::Error> {
    /// use prefect_client::resources::deployments::DeploymentSpec;
    ///
    /// let deployment = client.deployments().get_by_name("etl/nightly").await?;
    /// let spec = DeploymentSpec::from_deployment(&deployment, "etl");
    /// other.deployments().apply(&spec).await?; // the same deployment on another server
    /// # Ok(()) }
    /// ```
    pub fn from_deployment(deployment: &types::DeploymentResponse, flow_name: &str) -> DeploymentSpec {
        let mut spec = DeploymentSpec::new(flow_name, &deployment.name);
        spec.schedules = deployment
            .schedules
            .iter()
            .filter_map(Schedule::from_server)
            .collect();
        spec.parameters = deployment.parameters.clone();
        spec.parameter_schema = deployment.parameter_openapi_schema.clone();
        spec.enforce_parameter_schema = Some(deployment.enforce_parameter_schema);
        spec.tags = deployment.tags.clone();
        spec.description = deployment.description.clone();
        spec.version = deployment.version.clone();
        spec.concurrency = deployment.global_concurrency_limit.as_ref().map(|limit| {
            let options = deployment.concurrency_options.as_ref();
            let strategy = match options.map(|o| &o.collision_strategy) {
                Some(types::ConcurrencyLimitStrategy::CancelNew) => CollisionStrategy::CancelNew,
                _ => CollisionStrategy::Enqueue,
            };
            let grace = options
                .and_then(|o| o.grace_period_seconds)
                .map(|seconds| Duration::from_secs(seconds.max(0) as u64));
            (limit.limit.max(0) as u64, strategy, grace)
        });
        spec.paused = deployment.paused;
        spec.work_pool = deployment.work_pool_name.clone();
        spec.work_queue = deployment.work_queue_name.clone();
        spec.job_variables = deployment.job_variables.clone();
        spec.entrypoint = deployment.entrypoint.clone();
        spec.pull_steps = deployment.pull_steps.as_ref().map(|steps| {
            steps
                .iter()
                .map(|step| PullStep::from_json(&Value::Object(step.clone())))
                .collect()
        });
        spec.path = deployment.path.clone();
        let labels: Map<String, Value> = serde_json::to_value(&deployment.labels)
            .ok()
            .and_then(|labels| labels.as_object().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter(|(key, _)| !key.starts_with("prefect."))
            .collect();
        spec.labels = (!labels.is_empty()).then_some(labels);
        spec.storage_document_id = deployment.storage_document_id;
        spec.infrastructure_document_id = deployment.infrastructure_document_id;
        spec
    }

    /// What `apply` sends for the flow `flow_id`: the create body, with the pull steps, labels
    /// and version info as Prefect takes them.
    pub(crate) fn body(&self, flow_id: Uuid) -> Result<Value, Error> {
        let mut body = serde_json::to_value(self.create_body(flow_id)?)
            .map_err(|e| Error::invalid("deployment", format!("cannot be serialized: {e}")))?;
        if let Some(steps) = &self.pull_steps {
            body["pull_steps"] = Value::Array(steps.iter().map(PullStep::to_json).collect());
        }
        if let Some(labels) = &self.labels {
            body["labels"] = Value::Object(labels.clone());
        }
        if let Some(info) = &self.version_info {
            body["version_info"] = serde_json::to_value(info)
                .map_err(|e| Error::invalid("version info", format!("cannot be serialized: {e}")))?;
        }
        for (key, id) in [
            ("storage_document_id", self.storage_document_id),
            ("infrastructure_document_id", self.infrastructure_document_id),
        ] {
            if let Some(id) = id {
                body[key] = Value::String(id.to_string());
            }
        }
        if let Some(path) = &self.path {
            body["path"] = Value::String(path.clone());
        }
        Ok(body)
    }

    /// The automations of its triggers, for the deployment `id`.
    pub(crate) fn automations(&self, id: Uuid) -> Vec<AutomationSpec> {
        self.triggers
            .iter()
            .enumerate()
            .map(|(index, trigger)| trigger.automation(&self.name, index + 1, id))
            .collect()
    }
}

/// What version of the code a deployment runs, as Prefect's `VersionInfo`: its `type`
/// (`"vcs:git"`, `"vcs:github"`, …), the version, and where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct VersionInfo {
    /// The kind of version (`"vcs:git"`, `"vcs:github"`, `"prefect:simple"`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The version (a commit, a tag).
    pub version: String,
    /// The branch it was built from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Where to see it (a commit's URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Any other field Prefect's version types have (`commit_sha`, `repository`, `message`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl VersionInfo {
    /// Version `version` of the kind `kind` (`"vcs:git"`).
    pub fn new(kind: impl Into<String>, version: impl Into<String>) -> VersionInfo {
        VersionInfo {
            kind: kind.into(),
            version: version.into(),
            branch: None,
            url: None,
            extra: Map::new(),
        }
    }

    /// The branch.
    pub fn branch(mut self, branch: impl Into<String>) -> Self {
        self.branch = Some(branch.into());
        self
    }

    /// Where to see it.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }
}

/// A trigger of a deployment ([`DeploymentSpec::trigger`]): when it fires, an automation owned
/// by the deployment runs it, as Prefect's `DeploymentEventTrigger` and its kin do.
///
/// ```
/// use std::time::Duration;
/// use prefect_client::resources::automations::EventTrigger;
/// use prefect_client::resources::deployments::DeploymentTrigger;
///
/// let on_upload = DeploymentTrigger::new(EventTrigger::reactive().expect(["acme.file.uploaded"]))
///     .name("load-uploads")
///     .parameters(&serde_json::json!({ "file": "{{ event.resource.id }}" }))
///     .schedule_after(Duration::from_secs(30));
/// # let _ = on_upload;
/// ```
#[derive(Debug, Clone, PartialEq)]
#[must_use = "add it to a DeploymentSpec with .trigger(..)"]
pub struct DeploymentTrigger {
    trigger: Trigger,
    name: Option<String>,
    description: String,
    enabled: bool,
    run: RunDeployment,
}

impl DeploymentTrigger {
    /// Runs the deployment, with its own parameters, when `trigger` fires.
    pub fn new(trigger: impl Into<Trigger>) -> DeploymentTrigger {
        DeploymentTrigger {
            trigger: trigger.into(),
            name: None,
            description: String::new(),
            enabled: true,
            run: RunDeployment::selected(Uuid::nil()),
        }
    }

    /// The automation's name (default `<deployment>__automation_<n>`, as Prefect's).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The automation's description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Whether Prefect evaluates it (default true).
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// The run's parameters (Jinja templates over the event are rendered); default the
    /// deployment's own.
    pub fn parameters(mut self, parameters: &impl Serialize) -> Self {
        self.run = self.run.parameters(parameters);
        self
    }

    /// The run's job variables; default the deployment's own.
    pub fn job_variables(mut self, variables: &impl Serialize) -> Self {
        self.run = self.run.job_variables(variables);
        self
    }

    /// Schedules the run this long after the trigger fires (default: at once).
    pub fn schedule_after(mut self, delay: Duration) -> Self {
        self.run = self.run.schedule_after(delay);
        self
    }

    /// The automation, for the `index`th trigger of the deployment `deployment` (`id`).
    fn automation(&self, deployment: &str, index: usize, id: Uuid) -> AutomationSpec {
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| format!("{deployment}__automation_{index}"));
        let mut run = self.run.clone();
        run.target = crate::resources::automations::Target::Selected(id);
        AutomationSpec::new(&name, self.trigger.clone())
            .description(self.description.clone())
            .enabled(self.enabled)
            .action(run)
    }
}

/// `From<$trigger> for DeploymentTrigger`: the trigger, running the deployment as it is.
macro_rules! deployment_trigger_from {
    ($($trigger:ty),*) => {$(
        impl From<$trigger> for DeploymentTrigger {
            fn from(trigger: $trigger) -> DeploymentTrigger {
                DeploymentTrigger::new(trigger)
            }
        }
    )*};
}
deployment_trigger_from!(
    Trigger,
    crate::resources::automations::EventTrigger,
    crate::resources::automations::CompoundTrigger,
    crate::resources::automations::SequenceTrigger
);

/// A schedule of a deployment: cron (with a time zone), an interval (with an anchor), or an
/// RRULE; active or not.
///
/// ```
/// use std::time::Duration;
/// use prefect_client::resources::deployments::Schedule;
///
/// let weekdays = Schedule::cron("0 9 * * 1-5").timezone("America/New_York");
/// let hourly = Schedule::interval(Duration::from_secs(3600))
///     .anchor("2026-01-01T00:30:00Z".parse().unwrap());
/// let monthly = Schedule::rrule("FREQ=MONTHLY;BYMONTHDAY=1").active(false);
/// # let _ = (weekdays, hourly, monthly);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[must_use = "add it to a DeploymentSpec with .schedule(..)"]
pub struct Schedule {
    kind: ScheduleKind,
    timezone: Option<String>,
    active: bool,
    slug: Option<String>,
    parameters: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
enum ScheduleKind {
    Cron {
        expression: String,
        day_or: bool,
    },
    Interval {
        every: Duration,
        anchor: Option<DateTime<Utc>>,
    },
    RRule(String),
}

impl Schedule {
    fn of(kind: ScheduleKind) -> Schedule {
        Schedule {
            kind,
            timezone: None,
            active: true,
            slug: None,
            parameters: Map::new(),
        }
    }

    /// A cron schedule (`"0 9 * * 1-5"`), in UTC unless [`timezone`](Schedule::timezone) says
    /// otherwise.
    pub fn cron(expression: impl Into<String>) -> Schedule {
        Schedule::of(ScheduleKind::Cron {
            expression: expression.into(),
            day_or: true,
        })
    }

    /// Every `every` (at least a second), from [`anchor`](Schedule::anchor) (default: the
    /// server's now).
    pub fn interval(every: Duration) -> Schedule {
        Schedule::of(ScheduleKind::Interval { every, anchor: None })
    }

    /// An RFC 5545 RRULE (`"FREQ=DAILY;BYHOUR=10"`).
    pub fn rrule(rule: impl Into<String>) -> Schedule {
        Schedule::of(ScheduleKind::RRule(rule.into()))
    }

    /// The IANA time zone the schedule is read in (`"Europe/Berlin"`).
    pub fn timezone(mut self, timezone: impl Into<String>) -> Schedule {
        self.timezone = Some(timezone.into());
        self
    }

    /// An interval's first time; other times are this plus multiples of the interval.
    pub fn anchor(mut self, at: DateTime<Utc>) -> Schedule {
        if let ScheduleKind::Interval { anchor, .. } = &mut self.kind {
            *anchor = Some(at);
        }
        self
    }

    /// For a cron schedule: whether a day of month and a day of week both given match either
    /// (default, as cron) or both.
    pub fn day_or(mut self, day_or: bool) -> Schedule {
        if let ScheduleKind::Cron { day_or: or, .. } = &mut self.kind {
            *or = day_or;
        }
        self
    }

    /// Whether it schedules runs (default true).
    pub fn active(mut self, active: bool) -> Schedule {
        self.active = active;
        self
    }

    /// A name of its own, by which it is updated in place.
    pub fn slug(mut self, slug: impl Into<String>) -> Schedule {
        self.slug = Some(slug.into());
        self
    }

    /// Parameters of the runs it schedules, over the deployment's: any value serializing to a
    /// JSON object (others are ignored).
    pub fn parameters(mut self, parameters: &impl Serialize) -> Schedule {
        if let Ok(Value::Object(object)) = serde_json::to_value(parameters) {
            self.parameters = object;
        }
        self
    }

    /// The schedule, as the generated union.
    pub(crate) fn generated(&self) -> Result<types::DeploymentScheduleCreateSchedule, Error> {
        use types::DeploymentScheduleCreateSchedule as S;
        Ok(match &self.kind {
            ScheduleKind::Cron { expression, day_or } => S::CronSchedule(types::CronSchedule {
                cron: expression.clone(),
                day_or: *day_or,
                timezone: self.timezone.clone(),
            }),
            ScheduleKind::Interval { every, anchor } => {
                if every.as_secs_f64() < 1.0 {
                    return Err(Error::invalid(
                        "schedule interval",
                        format!("{every:?}; an interval is at least a second"),
                    ));
                }
                S::IntervalScheduleInput(types::IntervalScheduleInput {
                    anchor_date: *anchor,
                    interval: every.as_secs_f64(),
                    timezone: self.timezone.clone(),
                })
            }
            ScheduleKind::RRule(rule) => S::RRuleSchedule(types::RRuleSchedule {
                rrule: rule.clone(),
                timezone: Some(
                    self.timezone
                        .clone()
                        .unwrap_or_else(|| "UTC".to_string())
                        .parse()
                        .map_err(|e| Error::invalid("schedule time zone", format!("{e}")))?,
                ),
            }),
        })
    }

    /// The schedule the server has, `None` for a kind this SDK does not know.
    pub(crate) fn from_server(schedule: &types::DeploymentSchedule) -> Option<Schedule> {
        let inner = serde_json::to_value(&schedule.schedule).ok()?;
        let text = |key: &str| inner.get(key).and_then(Value::as_str).map(str::to_string);
        let mut read = if let Some(cron) = text("cron") {
            Schedule::cron(cron).day_or(inner.get("day_or").and_then(Value::as_bool).unwrap_or(true))
        } else if let Some(seconds) = inner.get("interval").and_then(Value::as_f64) {
            let every = Schedule::interval(Duration::try_from_secs_f64(seconds).ok()?);
            match text("anchor_date").and_then(|at| at.parse().ok()) {
                Some(anchor) => every.anchor(anchor),
                None => every,
            }
        } else {
            Schedule::rrule(text("rrule")?)
        };
        if let Some(timezone) = text("timezone") {
            read = read.timezone(timezone);
        }
        read.active = schedule.active;
        read.slug = schedule.slug.clone();
        read.parameters = schedule.parameters.clone();
        Some(read)
    }

    pub(crate) fn create_body(&self) -> Result<types::DeploymentScheduleCreate, Error> {
        Ok(types::DeploymentScheduleCreate {
            active: self.active,
            max_scheduled_runs: None,
            parameters: self.parameters.clone(),
            replaces: None,
            schedule: self.generated()?,
            slug: self.slug.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_becomes_the_create_body_prefects_serve_sends() {
        let spec = DeploymentSpec::new("etl", "nightly")
            .schedule(Schedule::cron("0 9 * * 1-5").timezone("Europe/Berlin"))
            .schedule(
                Schedule::interval(Duration::from_secs(3600))
                    .anchor("2026-01-01T00:00:00Z".parse().unwrap())
                    .active(false),
            )
            .schedule(Schedule::rrule("FREQ=DAILY;BYHOUR=10").timezone("America/New_York"))
            .parameters(&serde_json::json!({ "n": 5 }))
            .concurrency_limit(1, CollisionStrategy::CancelNew)
            .tags(["t1"]);
        let body = serde_json::to_value(spec.create_body(uuid::Uuid::nil()).unwrap()).unwrap();
        assert_eq!(body["schedules"][0]["schedule"]["cron"], "0 9 * * 1-5");
        assert_eq!(body["schedules"][0]["schedule"]["timezone"], "Europe/Berlin");
        assert_eq!(body["schedules"][1]["schedule"]["interval"], 3600.0);
        assert_eq!(
            body["schedules"][1]["schedule"]["anchor_date"],
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(body["schedules"][1]["active"], false);
        assert_eq!(body["schedules"][2]["schedule"]["rrule"], "FREQ=DAILY;BYHOUR=10");
        assert_eq!(body["concurrency_limit"], 1);
        assert_eq!(body["concurrency_options"]["collision_strategy"], "CANCEL_NEW");
        assert_eq!(body["parameters"]["n"], 5);
        assert_eq!(
            body["enforce_parameter_schema"], false,
            "no schema, nothing to enforce"
        );
        assert!(
            body.get("work_pool_name").is_none(),
            "a served deployment has no pool"
        );
    }

    #[test]
    fn bad_options_fail_apply_before_anything_is_sent() {
        let spec = DeploymentSpec::new("etl", "x").parameters(&[1, 2]);
        assert!(spec.create_body(uuid::Uuid::nil()).unwrap_err().is_client_side());
        let spec = DeploymentSpec::new("etl", "x").concurrency_limit(0, CollisionStrategy::Enqueue);
        assert!(spec.create_body(uuid::Uuid::nil()).is_err());
        let spec = DeploymentSpec::new("etl", "x").schedule(Schedule::interval(Duration::from_millis(10)));
        assert!(spec.create_body(uuid::Uuid::nil()).is_err());
        assert!(
            DeploymentSpec::new("etl", "a/b")
                .create_body(uuid::Uuid::nil())
                .is_err()
        );
    }
}
