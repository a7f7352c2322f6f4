//! Automations: what Prefect does when events come, or fail to come. An [`AutomationSpec`]
//! (a [`Trigger`] and its [`Action`]s) is created, updated, or applied by name; what the server
//! has is an [`Automation`].
//!
//! The triggers and actions are typed here, told apart by their `type` as Prefect's own
//! schema does; a kind this SDK does not know (from Prefect Cloud or a newer server) is kept
//! as it came ([`Trigger::Other`], [`Action::Other`]) and sent back unchanged. Templates
//! (notification subjects and bodies, webhook payloads, Jinja in a deployment run's
//! parameters) are checked with the server's own check before anything is saved.

mod actions;
mod spec;
mod triggers;

pub use actions::{Action, CallWebhook, ChangeFlowRunState, RunDeployment, SendNotification, Target};
pub use spec::{Automation, AutomationSpec, ZOMBIE_WINDOW};
pub use triggers::{CompoundTrigger, EventTrigger, Posture, Require, ResourceSpec, SequenceTrigger, Trigger};

use progenitor_client::{ClientHooks, OperationInfo};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::ApiError;
use crate::query::{AutomationFilter, AutomationFilterName, AutomationQuery};
use crate::resources::pagination::{self, Key, Listing};
use crate::resources::{Applied, Change, call};
use crate::types::{AutomationPartialUpdate, AutomationSort};
use crate::{Client, Error};

/// Automations; from [`Client::automations`].
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
/// use prefect_client::resources::automations::{AutomationSpec, EventTrigger, ResourceSpec, RunDeployment};
///
/// # let cleanup = uuid::Uuid::nil();
/// // Runs the clean-up deployment whenever a flow run of the "etl" flow fails.
/// let spec = AutomationSpec::new(
///     "clean-up-after-etl",
///     EventTrigger::reactive()
///         .expect(["prefect.flow-run.Failed"])
///         .related_spec(ResourceSpec::new().label("prefect.resource.role", ["flow"]).label("prefect.resource.name", ["etl"])),
/// )
/// .action(RunDeployment::selected(cleanup).parameters(&serde_json::json!({ "run": "{{ flow_run.id }}" })));
/// let applied = client.automations().apply(&spec).await?; // created, updated or unchanged
/// println!("{} {}", applied.object.id, applied.change);
/// client.automations().disable(applied.object.id).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Automations<'a> {
    client: &'a Client,
}

impl<'a> Automations<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Automations { client }
    }

    /// Creates the automation `spec` describes (another of the same name may exist: see
    /// [`apply`](Self::apply) for one per name).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a spec the server would refuse, or a template the server's
    /// check refuses (naming the action and the server's message; nothing saved);
    /// [`Error::Validation`] for anything else the server refuses; any error of the requests.
    pub async fn create(&self, spec: &AutomationSpec) -> Result<Automation, Error> {
        self.check(spec).await?;
        self.send_create(spec).await
    }

    /// The automation with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is none; any other error of the request.
    pub async fn get(&self, id: Uuid) -> Result<Automation, Error> {
        let route = format!("automations/{id}");
        let answer = exchange(self.client, "read_automation", Method::GET, &route, None).await?;
        decode("read_automation", &answer)
    }

    /// The automation named `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when none has that name; [`Error::AmbiguousName`] when several do;
    /// any other error of the request.
    pub async fn get_by_name(&self, name: &str) -> Result<Automation, Error> {
        let mut named = self.named(name).await?;
        match named.len() {
            0 => Err(self.none_named(name)),
            1 => Ok(named.remove(0)),
            _ => Err(ambiguous(name, &named)),
        }
    }

    crate::resources::list_verbs!("automations", AutomationQuery => Automation);

    /// Makes the automation with this id what `spec` says, every field (PUT): what the spec
    /// leaves empty (tags, the lists of actions) is emptied.
    ///
    /// # Errors
    /// As [`create`](Self::create), and [`Error::NotFound`] when there is no such automation.
    pub async fn update(&self, id: Uuid, spec: &AutomationSpec) -> Result<(), Error> {
        self.check(spec).await?;
        self.send_update(id, spec).await
    }

    /// Deletes the automation with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is none; any other error of the request.
    pub async fn delete(&self, id: Uuid) -> Result<(), Error> {
        call!(self.client, delete_automation(&id))
    }

    /// Turns the automation on: Prefect evaluates its trigger again.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is none; any other error of the request.
    pub async fn enable(&self, id: Uuid) -> Result<(), Error> {
        self.set_enabled(id, true).await
    }

    /// Turns the automation off: Prefect stops evaluating it until it is enabled.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is none; any other error of the request.
    pub async fn disable(&self, id: Uuid) -> Result<(), Error> {
        self.set_enabled(id, false).await
    }

    async fn set_enabled(&self, id: Uuid, enabled: bool) -> Result<(), Error> {
        call!(
            self.client,
            patch_automation(&id, &AutomationPartialUpdate { enabled })
        )
    }

    /// Makes the automation named as `spec` is what the spec says: creates it when none has
    /// that name ([`Change::Created`]), updates it when it differs ([`Change::Updated`]), and
    /// writes nothing when it is as the spec says ([`Change::Unchanged`]).
    ///
    /// "As the spec says" compares what would be sent with what the server has, both as the
    /// server keeps them: the server's trigger ids aside, a proactive window of 0 as the 10 s
    /// the server makes of it, the order of tags, events and label values aside, and empty
    /// parameters or job variables as none.
    ///
    /// Two applies of the same new name at the same moment may both create one; the next
    /// apply then reports [`Error::AmbiguousName`].
    ///
    /// # Errors
    /// As [`create`](Self::create); [`Error::AmbiguousName`] when several automations have the
    /// spec's name (nothing written).
    pub async fn apply(&self, spec: &AutomationSpec) -> Result<Applied<Automation>, Error> {
        self.check(spec).await?;
        let mut named = self.named(&spec.name).await?;
        if named.len() > 1 {
            return Err(ambiguous(&spec.name, &named));
        }
        let Some(existing) = named.pop() else {
            return Ok(Applied::new(self.send_create(spec).await?, Change::Created));
        };
        if existing.spec.normalized() == spec.normalized() {
            return Ok(Applied::new(existing, Change::Unchanged));
        }
        self.send_update(existing.id, spec).await?;
        Ok(Applied::new(self.get(existing.id).await?, Change::Updated))
    }

    /// Refuses what the server would refuse, before anything is saved: the spec's own checks,
    /// then each template through the server's template check.
    async fn check(&self, spec: &AutomationSpec) -> Result<(), Error> {
        spec.check()?;
        for (at, action) in spec.all_actions() {
            for (field, template) in action.templates() {
                match call!(self.client, validate_template(template)) {
                    Ok(()) => {}
                    Err(Error::Validation { error, .. }) => {
                        return Err(Error::invalid(
                            "automation template",
                            format!(
                                "{at} ({}) {field}: the server's template check says {}; fix the template (nothing was saved)",
                                action.kind(),
                                error.detail
                            ),
                        ));
                    }
                    Err(other) => return Err(other),
                }
            }
        }
        Ok(())
    }

    /// Creates the automation `spec` describes, owned by the resource `owner`
    /// (`prefect.deployment.<id>`), as Prefect's `deploy` creates a deployment's triggers.
    pub(crate) async fn create_owned(&self, spec: &AutomationSpec, owner: &str) -> Result<Automation, Error> {
        self.check(spec).await?;
        let mut body = serde_json::to_value(spec)
            .map_err(|e| Error::invalid("automation", format!("cannot be serialized: {e}")))?;
        body["owner_resource"] = serde_json::Value::String(owner.to_string());
        let answer = exchange(
            self.client,
            "create_automation",
            Method::POST,
            "automations/",
            Some(json_body(&body)?),
        )
        .await?;
        decode("create_automation", &answer)
    }

    /// Deletes every automation the resource `owner` owns.
    pub(crate) async fn delete_owned(&self, owner: &str) -> Result<(), Error> {
        call!(self.client, delete_automations_owned_by_resource(owner)).map(drop)
    }

    async fn send_create(&self, spec: &AutomationSpec) -> Result<Automation, Error> {
        let body = json_body(spec)?;
        let answer = exchange(
            self.client,
            "create_automation",
            Method::POST,
            "automations/",
            Some(body),
        )
        .await?;
        decode("create_automation", &answer)
    }

    async fn send_update(&self, id: Uuid, spec: &AutomationSpec) -> Result<(), Error> {
        let route = format!("automations/{id}");
        exchange(
            self.client,
            "update_automation",
            Method::PUT,
            &route,
            Some(json_body(spec)?),
        )
        .await
        .map(drop)
    }

    /// The automations named `name` (the server's page: more than enough to tell one from
    /// several).
    async fn named(&self, name: &str) -> Result<Vec<Automation>, Error> {
        let query = AutomationQuery {
            automations: Some(AutomationFilter {
                name: Some(AutomationFilterName {
                    any: Some(vec![name.to_string()]),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.list_page(&query).await
    }

    /// [`Error::NotFound`] for a name no automation has, as the server says it of an id.
    fn none_named(&self, name: &str) -> Error {
        let base = reqwest::Url::parse(self.client.api_url())
            .map(|url| url.path().trim_end_matches('/').to_string())
            .unwrap_or_default();
        Error::NotFound(ApiError {
            status: StatusCode::NOT_FOUND,
            path: format!("{base}/automations/filter"),
            detail: format!("no automation is named {name:?}"),
        })
    }
}

/// [`Error::AmbiguousName`] for the automations sharing `name`.
fn ambiguous(name: &str, named: &[Automation]) -> Error {
    Error::AmbiguousName {
        what: "automation",
        name: name.to_string(),
        ids: named.iter().map(|automation| automation.id).collect(),
    }
}

/// Sends one request of the generated operation `operation` (`POST automations/`, …) through
/// the hook every generated call passes (credentials, retries as the operation allows,
/// tracing), with `body` (JSON) as its body, and gives the answer's body.
///
/// The generated request types cannot carry an automation faithfully: their action and
/// trigger unions are untagged (a body could be read as the wrong member), and
/// `AutomationUpdate` leaves out empty lists, which the server's PUT then keeps where it
/// should empty them. The hand-written types are the body instead.
pub(crate) async fn exchange(
    client: &Client,
    operation: &'static str,
    method: Method,
    route: &str,
    body: Option<Vec<u8>>,
) -> Result<bytes::Bytes, Error> {
    let raw = client.raw();
    let mut request = raw.client.request(method, format!("{}/{route}", raw.baseurl));
    if let Some(body) = body {
        request = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
    }
    let request = request.build().map_err(Error::from_reqwest)?;
    let answer = raw
        .exec(
            request,
            &OperationInfo {
                operation_id: operation,
            },
        )
        .await
        .map_err(|e| Error::from_reqwest(e).in_client(client.config()))?;
    if !answer.status().is_success() {
        return Err(Error::from_response(answer).await.in_client(client.config()));
    }
    answer
        .bytes()
        .await
        .map_err(|e| Error::from_reqwest(e).in_client(client.config()))
}

/// `value` as a JSON body.
pub(crate) fn json_body(value: &impl Serialize) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::invalid("automation", format!("cannot be serialized: {e}")))
}

/// The answer of `operation` as `T`.
pub(crate) fn decode<T: DeserializeOwned>(operation: &str, body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|source| Error::Decode {
        operation: operation.to_string(),
        excerpt: crate::response::excerpt(body),
        source,
    })
}

impl Listing for AutomationQuery {
    type Item = Automation;

    fn limit(&self) -> Option<i64> {
        self.limit
    }

    fn set_page(&mut self, offset: u64, limit: u32) {
        self.offset = offset;
        self.limit = Some(i64::from(limit));
    }

    async fn fetch(client: &Client, page: &Self) -> Result<Vec<Automation>, Error> {
        let body = json_body(page)?;
        let answer = exchange(
            client,
            "read_automations",
            Method::POST,
            "automations/filter",
            Some(body),
        )
        .await?;
        decode("read_automations", &answer)
    }

    fn id(item: &Automation) -> Uuid {
        item.id
    }

    fn keyed(&mut self) -> Option<fn(&Automation) -> Key> {
        let by_creation = AutomationSort::CreatedDesc;
        match &self.sort {
            None => self.sort = Some(by_creation),
            Some(chosen) if *chosen == by_creation => {}
            Some(_) => return None,
        }
        Some(|automation| pagination::time(automation.created, true))
    }
}

/// The body of an action or trigger: its `type` beside its fields, told apart by it.
mod tagged {
    use serde::de::DeserializeOwned;
    use serde::{Serialize, Serializer};
    use serde_json::{Map, Value};

    /// The `type` of a union member's JSON.
    pub(super) fn kind_of(value: &Value) -> Option<&str> {
        value.get("type")?.as_str()
    }

    /// The member's JSON as `T`, or `None` when it does not fit.
    pub(super) fn decode<T: DeserializeOwned>(value: &Value) -> Option<T> {
        T::deserialize(value).ok()
    }

    /// Writes `fields` (a JSON object when serialized) with `"type": kind` among them.
    pub(super) fn serialize<S: Serializer>(
        serializer: S,
        kind: &str,
        fields: &impl Serialize,
    ) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let mut object = match serde_json::to_value(fields).map_err(S::Error::custom)? {
            Value::Object(object) => object,
            other => return Err(S::Error::custom(format!("{kind}: not a JSON object: {other}"))),
        };
        object.insert("type".to_string(), Value::String(kind.to_string()));
        Map::serialize(&object, serializer)
    }
}

/// Durations as Prefect sends `timedelta`s: seconds, as a number.
mod seconds {
    use std::time::Duration;

    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(duration.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        from_seconds(f64::deserialize(deserializer)?)
    }

    fn from_seconds<E: Error>(seconds: f64) -> Result<Duration, E> {
        Duration::try_from_secs_f64(seconds)
            .map_err(|_| E::custom(format!("{seconds} is not a duration in seconds")))
    }

    /// `None` as `null`.
    pub mod optional {
        use super::*;

        pub fn serialize<S: Serializer>(
            duration: &Option<Duration>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match duration {
                Some(duration) => super::serialize(duration, serializer),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
            Option::<f64>::deserialize(deserializer)?
                .map(from_seconds)
                .transpose()
        }
    }
}
