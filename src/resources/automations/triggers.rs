//! What makes an automation act: a [`Trigger`] (an [`EventTrigger`] on events, or a
//! [`CompoundTrigger`] / [`SequenceTrigger`] over other triggers), and the [`ResourceSpec`]
//! that says which events' resources a trigger looks at.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::{seconds, tagged};

/// When a trigger fires; Prefect's `Trigger` union, told apart by its `type`.
///
/// A trigger this SDK does not know (Prefect Cloud's `metric` trigger, or one a newer server
/// adds) is kept as [`Trigger::Other`], exactly as the server sent it, and sent back
/// unchanged.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Trigger {
    /// `event`: fires on events that come, or that fail to come.
    Event(EventTrigger),
    /// `compound`: fires when some of its triggers have fired.
    Compound(CompoundTrigger),
    /// `sequence`: fires when its triggers have fired in order.
    Sequence(SequenceTrigger),
    /// A kind of trigger this SDK does not know, as the server sent it (its `type` included).
    Other(Value),
}

impl Trigger {
    /// Prefect's name of the trigger's kind (its `type`): `event`, `compound`, `sequence`, or
    /// what an unknown trigger says (`unknown` when it says nothing).
    pub fn kind(&self) -> &str {
        match self {
            Trigger::Event(_) => "event",
            Trigger::Compound(_) => "compound",
            Trigger::Sequence(_) => "sequence",
            Trigger::Other(value) => tagged::kind_of(value).unwrap_or("unknown"),
        }
    }

    /// A trigger from its JSON: known kinds decoded by their `type`; anything else (another
    /// kind, or a known kind this SDK cannot read) kept as it is.
    fn from_json(value: Value) -> Trigger {
        let known = match tagged::kind_of(&value) {
            Some("event") => tagged::decode(&value).map(Trigger::Event),
            Some("compound") => tagged::decode(&value).map(Trigger::Compound),
            Some("sequence") => tagged::decode(&value).map(Trigger::Sequence),
            _ => None,
        };
        known.unwrap_or(Trigger::Other(value))
    }

    /// The window of the trigger: an event trigger's `within`, a compound or sequence
    /// trigger's. `Err` for a trigger of a kind this SDK does not know.
    pub(crate) fn set_within(&mut self, within: Duration) -> Result<(), String> {
        match self {
            Trigger::Event(event) => event.within = within,
            Trigger::Compound(compound) => compound.within = Some(within),
            Trigger::Sequence(sequence) => sequence.within = Some(within),
            Trigger::Other(_) => {
                return Err(format!(
                    "the trigger is of a kind this SDK does not know ({}); set its window in its JSON",
                    self.kind()
                ));
            }
        }
        Ok(())
    }

    /// What the server would refuse, found before sending: a proactive window under 10 s, a
    /// compound trigger requiring more triggers than it has.
    pub(crate) fn check(&self) -> Result<(), String> {
        match self {
            Trigger::Event(event) => {
                if event.posture == Posture::Proactive
                    && !event.within.is_zero()
                    && event.within < PROACTIVE_MINIMUM
                {
                    return Err(format!(
                        "a proactive trigger's window is at least 10 s, not {:?}; widen `within` (0 means 10 s)",
                        event.within
                    ));
                }
                Ok(())
            }
            Trigger::Compound(compound) => {
                if let Require::AtLeast(n) = compound.require
                    && (n == 0 || n as usize > compound.triggers.len())
                {
                    return Err(format!(
                        "a compound trigger of {} triggers cannot require {n} of them; require 1 to {}, Require::Any or Require::All",
                        compound.triggers.len(),
                        compound.triggers.len()
                    ));
                }
                compound.triggers.iter().try_for_each(Trigger::check)
            }
            Trigger::Sequence(sequence) => sequence.triggers.iter().try_for_each(Trigger::check),
            Trigger::Other(_) => Ok(()),
        }
    }

    /// The trigger as the server keeps it, for comparing: what the server fills in filled in
    /// (a proactive window of 0 is 10 s), values of a label in order, no empty related-resource
    /// specs, and no trigger ids (the server gives new ones on every write).
    pub(crate) fn normalized(&self) -> Trigger {
        match self {
            Trigger::Event(event) => {
                let mut event = event.clone();
                if event.posture == Posture::Proactive && event.within.is_zero() {
                    event.within = PROACTIVE_MINIMUM;
                }
                event.match_ = event.match_.normalized();
                event.match_related = event
                    .match_related
                    .iter()
                    .filter(|spec| !spec.is_empty())
                    .map(ResourceSpec::normalized)
                    .collect();
                Trigger::Event(event)
            }
            Trigger::Compound(compound) => Trigger::Compound(CompoundTrigger {
                triggers: compound.triggers.iter().map(Trigger::normalized).collect(),
                ..compound.clone()
            }),
            Trigger::Sequence(sequence) => Trigger::Sequence(SequenceTrigger {
                triggers: sequence.triggers.iter().map(Trigger::normalized).collect(),
                ..sequence.clone()
            }),
            Trigger::Other(value) => {
                let mut value = value.clone();
                if let Some(object) = value.as_object_mut() {
                    object.remove("id");
                }
                Trigger::Other(value)
            }
        }
    }
}

/// The shortest window the server takes for a proactive trigger (and what it makes of 0).
const PROACTIVE_MINIMUM: Duration = Duration::from_secs(10);

impl Serialize for Trigger {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Trigger::Event(event) => tagged::serialize(serializer, "event", event),
            Trigger::Compound(compound) => tagged::serialize(serializer, "compound", compound),
            Trigger::Sequence(sequence) => tagged::serialize(serializer, "sequence", sequence),
            Trigger::Other(value) => value.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Trigger {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Trigger::from_json)
    }
}

impl From<EventTrigger> for Trigger {
    fn from(trigger: EventTrigger) -> Trigger {
        Trigger::Event(trigger)
    }
}

impl From<CompoundTrigger> for Trigger {
    fn from(trigger: CompoundTrigger) -> Trigger {
        Trigger::Compound(trigger)
    }
}

impl From<SequenceTrigger> for Trigger {
    fn from(trigger: SequenceTrigger) -> Trigger {
        Trigger::Sequence(trigger)
    }
}

/// Whether an event trigger acts on events that come or on events that do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Posture {
    /// Fires when `threshold` of the expected events come within the window.
    #[default]
    Reactive,
    /// Fires when fewer than `threshold` of the expected events come within the window (after
    /// one of `after`, when set).
    Proactive,
}

/// A trigger on events: Prefect's `EventTrigger`.
///
/// Build one with [`reactive`](Self::reactive) or [`proactive`](Self::proactive) and its
/// setters; every field is public to read.
///
/// ```
/// use std::time::Duration;
/// use prefect_client::resources::automations::EventTrigger;
///
/// // Flow runs tagged "etl" failing three times within an hour.
/// let failures = EventTrigger::reactive()
///     .expect(["prefect.flow-run.Failed"])
///     .matching("prefect.resource.id", ["prefect.flow-run.*"])
///     .matching_related("prefect.resource.id", ["prefect.tag.etl"])
///     .threshold(3)
///     .within(Duration::from_secs(3600));
/// # let _ = failures;
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EventTrigger {
    /// Reactive or proactive.
    #[serde(default)]
    pub posture: Posture,
    /// The labels of the events' resource (Prefect's `match`); empty: any resource.
    #[serde(rename = "match", default)]
    pub match_: ResourceSpec,
    /// The labels the events' related resources must have (Prefect's `match_related`; every
    /// spec must match one of them); empty: any.
    #[serde(default, with = "related")]
    pub match_related: Vec<ResourceSpec>,
    /// The events that start the window (a trailing `*` is a wildcard); empty: it is always
    /// open.
    #[serde(default)]
    pub after: BTreeSet<String>,
    /// The events counted (a trailing `*` is a wildcard); empty: any event.
    #[serde(default)]
    pub expect: BTreeSet<String>,
    /// Labels whose values each have a count of their own (`prefect.resource.id`: one per
    /// resource; `related:<role>:<label>` for a related resource's label).
    #[serde(default)]
    pub for_each: BTreeSet<String>,
    /// How many expected events fire a reactive trigger, or keep a proactive one quiet.
    #[serde(default = "one")]
    pub threshold: u32,
    /// The window the events are counted in (a proactive trigger's is at least 10 s; 0 means
    /// 10 s for it).
    #[serde(default, with = "seconds")]
    pub within: Duration,
}

fn one() -> u32 {
    1
}

impl EventTrigger {
    /// A trigger firing when the expected events come: any event of any resource, once, until
    /// set otherwise.
    pub fn reactive() -> EventTrigger {
        EventTrigger::with_posture(Posture::Reactive)
    }

    /// A trigger firing when the expected events do not come within the window (10 s until
    /// set otherwise).
    pub fn proactive() -> EventTrigger {
        EventTrigger::with_posture(Posture::Proactive)
    }

    fn with_posture(posture: Posture) -> EventTrigger {
        EventTrigger {
            posture,
            match_: ResourceSpec::default(),
            match_related: Vec::new(),
            after: BTreeSet::new(),
            expect: BTreeSet::new(),
            for_each: BTreeSet::new(),
            threshold: 1,
            within: Duration::ZERO,
        }
    }

    /// Adds events that open the window.
    pub fn after(mut self, events: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.after.extend(events.into_iter().map(Into::into));
        self
    }

    /// Adds events to count.
    pub fn expect(mut self, events: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.expect.extend(events.into_iter().map(Into::into));
        self
    }

    /// The events' resource must have `label` with one of `values`.
    pub fn matching(mut self, label: &str, values: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.match_ = self.match_.label(label, values);
        self
    }

    /// One of the events' related resources must have `label` with one of `values` (the same
    /// related resource for every label of one call's spec; use
    /// [`related_spec`](Self::related_spec) for several labels).
    pub fn matching_related(
        mut self,
        label: &str,
        values: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.match_related.push(ResourceSpec::new().label(label, values));
        self
    }

    /// One of the events' related resources must match `spec` (every label of it).
    pub fn related_spec(mut self, spec: ResourceSpec) -> Self {
        self.match_related.push(spec);
        self
    }

    /// Adds labels to count by separately.
    pub fn for_each(mut self, labels: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.for_each.extend(labels.into_iter().map(Into::into));
        self
    }

    /// How many events (default 1).
    pub fn threshold(mut self, threshold: u32) -> Self {
        self.threshold = threshold;
        self
    }

    /// The window (default 0: at once for a reactive trigger, 10 s for a proactive one).
    pub fn within(mut self, within: Duration) -> Self {
        self.within = within;
        self
    }
}

/// How many of a compound trigger's triggers must fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Require {
    /// One of them (`"any"`).
    Any,
    /// All of them (`"all"`).
    All,
    /// At least this many (1 up to how many there are).
    AtLeast(u32),
}

impl Serialize for Require {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Require::Any => serializer.serialize_str("any"),
            Require::All => serializer.serialize_str("all"),
            Require::AtLeast(n) => serializer.serialize_u32(*n),
        }
    }
}

impl<'de> Deserialize<'de> for Require {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(word) if word == "any" => Ok(Require::Any),
            Value::String(word) if word == "all" => Ok(Require::All),
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Require::AtLeast)
                .ok_or_else(|| D::Error::custom(format!("require {n} is not a count"))),
            other => Err(D::Error::custom(format!(
                "require is \"any\", \"all\" or a count, not {other}"
            ))),
        }
    }
}

/// A trigger that fires when some of its triggers have fired within a window: Prefect's
/// `CompoundTrigger`.
///
/// ```
/// use std::time::Duration;
/// use prefect_client::resources::automations::{CompoundTrigger, EventTrigger, Require};
///
/// let both = CompoundTrigger::new(Require::All)
///     .trigger(EventTrigger::reactive().expect(["extract.done"]))
///     .trigger(EventTrigger::reactive().expect(["load.done"]))
///     .within(Duration::from_secs(600));
/// # let _ = both;
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CompoundTrigger {
    /// How many of the triggers must fire.
    pub require: Require,
    /// The triggers.
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    /// The window they must fire in; `None`: no limit.
    #[serde(default, with = "seconds::optional")]
    pub within: Option<Duration>,
}

impl CompoundTrigger {
    /// A compound trigger without triggers yet, and without a window.
    pub fn new(require: Require) -> CompoundTrigger {
        CompoundTrigger {
            require,
            triggers: Vec::new(),
            within: None,
        }
    }
}

/// A trigger that fires when its triggers have fired in order within a window: Prefect's
/// `SequenceTrigger`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SequenceTrigger {
    /// The triggers, in the order they must fire.
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    /// The window they must fire in; `None`: no limit.
    #[serde(default, with = "seconds::optional")]
    pub within: Option<Duration>,
}

impl SequenceTrigger {
    /// A sequence without triggers yet, and without a window.
    pub fn new() -> SequenceTrigger {
        SequenceTrigger {
            triggers: Vec::new(),
            within: None,
        }
    }
}

/// The setters the triggers made of triggers share (Prefect's `CompositeTrigger`).
macro_rules! composite {
    ($($trigger:ty),*) => {$(
        impl $trigger {
            /// Adds a trigger (the next one, for a sequence).
            pub fn trigger(mut self, trigger: impl Into<Trigger>) -> Self {
                self.triggers.push(trigger.into());
                self
            }

            /// The window they must fire in.
            pub fn within(mut self, within: Duration) -> Self {
                self.within = Some(within);
                self
            }
        }
    )*};
}

composite!(CompoundTrigger, SequenceTrigger);

impl Default for SequenceTrigger {
    fn default() -> Self {
        SequenceTrigger::new()
    }
}

/// Labels a resource must have, each with the values it may take: Prefect's
/// `ResourceSpecification`.
///
/// A resource matches when every label has one of its values; a value ending in `*` matches
/// any value that starts with the rest, one starting with `!` any value but the rest. An empty
/// spec matches every resource. The server takes a label's values as one string or a list;
/// both are read, and a list is sent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ResourceSpec(pub BTreeMap<String, Vec<String>>);

impl ResourceSpec {
    /// A spec matching every resource.
    pub fn new() -> ResourceSpec {
        ResourceSpec::default()
    }

    /// Adds `label` with `values` (to those it has).
    pub fn label(mut self, label: &str, values: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.0
            .entry(label.to_string())
            .or_default()
            .extend(values.into_iter().map(Into::into));
        self
    }

    /// Whether it matches every resource.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The values of each label sorted and without repeats (their order means nothing).
    fn normalized(&self) -> ResourceSpec {
        ResourceSpec(
            self.0
                .iter()
                .map(|(label, values)| {
                    let set: BTreeSet<&String> = values.iter().collect();
                    (label.clone(), set.into_iter().cloned().collect())
                })
                .collect(),
        )
    }
}

impl<'de> Deserialize<'de> for ResourceSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Values {
            One(String),
            Many(Vec<String>),
        }
        let labels = BTreeMap::<String, Values>::deserialize(deserializer)?;
        Ok(ResourceSpec(
            labels
                .into_iter()
                .map(|(label, values)| {
                    let values = match values {
                        Values::One(value) => vec![value],
                        Values::Many(values) => values,
                    };
                    (label, values)
                })
                .collect(),
        ))
    }
}

/// `match_related` on the wire: one spec, or a list of them. Read either way (an empty spec
/// matches everything, so it is left out); sent as `{}` when there are none (Prefect's
/// default), the spec alone when there is one, a list otherwise.
mod related {
    use super::*;

    pub fn serialize<S: Serializer>(specs: &[ResourceSpec], serializer: S) -> Result<S::Ok, S::Error> {
        match specs {
            [] => ResourceSpec::default().serialize(serializer),
            [one] => one.serialize(serializer),
            many => many.serialize(serializer),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<ResourceSpec>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Related {
            One(ResourceSpec),
            Many(Vec<ResourceSpec>),
        }
        let specs = match Related::deserialize(deserializer)? {
            Related::One(spec) => vec![spec],
            Related::Many(specs) => specs,
        };
        Ok(specs.into_iter().filter(|spec| !spec.is_empty()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_trigger_is_sent_as_prefect_writes_it() {
        let trigger = Trigger::from(
            EventTrigger::proactive()
                .after(["prefect.flow-run.heartbeat"])
                .expect(["prefect.flow-run.Completed", "prefect.flow-run.heartbeat"])
                .matching("prefect.resource.id", ["prefect.flow-run.*"])
                .for_each(["prefect.resource.id"])
                .within(Duration::from_secs(90)),
        );
        assert_eq!(
            serde_json::to_value(&trigger).unwrap(),
            json!({
                "type": "event",
                "posture": "Proactive",
                "match": { "prefect.resource.id": ["prefect.flow-run.*"] },
                "match_related": {},
                "after": ["prefect.flow-run.heartbeat"],
                "expect": ["prefect.flow-run.Completed", "prefect.flow-run.heartbeat"],
                "for_each": ["prefect.resource.id"],
                "threshold": 1,
                "within": 90.0
            })
        );
    }

    #[test]
    fn triggers_are_read_by_their_type_with_the_server_s_defaults() {
        let read: Trigger = serde_json::from_value(json!({
            "type": "compound",
            "id": "6f1c8d1e-6a43-4a59-9a30-4f4f3a1c0c11",
            "require": 2,
            "within": null,
            "triggers": [
                { "type": "event", "id": "0b7c2f4e-3b59-4c5e-8f8d-2a1d2b3c4d5e", "expect": ["a"],
                  "match": { "prefect.resource.id": "x" }, "match_related": [{}, { "k": ["v", "w"] }] },
                { "type": "sequence", "triggers": [], "within": 30.5 }
            ]
        }))
        .unwrap();
        let expected = CompoundTrigger::new(Require::AtLeast(2))
            .trigger(
                EventTrigger::reactive()
                    .expect(["a"])
                    .matching("prefect.resource.id", ["x"])
                    .matching_related("k", ["v", "w"]),
            )
            .trigger(SequenceTrigger::new().within(Duration::from_secs_f64(30.5)));
        assert_eq!(read, Trigger::Compound(expected));
    }

    #[test]
    fn an_unknown_trigger_is_kept_and_sent_back_as_it_came() {
        let metric = json!({
            "type": "metric",
            "posture": "Metric",
            "metric": { "name": "lateness", "threshold": 60.0, "operator": ">", "range": 300.0, "firing_for": 300.0 },
            "match": {}
        });
        let read: Trigger = serde_json::from_value(metric.clone()).unwrap();
        assert_eq!(read, Trigger::Other(metric.clone()));
        assert_eq!(read.kind(), "metric");
        assert_eq!(serde_json::to_value(&read).unwrap(), metric);
        // A known kind whose fields this SDK cannot read is kept too, not lost.
        let odd = json!({ "type": "event", "threshold": "many" });
        let read: Trigger = serde_json::from_value(odd.clone()).unwrap();
        assert_eq!(serde_json::to_value(&read).unwrap(), odd);
    }

    #[test]
    fn requirements_are_any_all_or_a_count() {
        for (wire, require) in [
            (json!("any"), Require::Any),
            (json!("all"), Require::All),
            (json!(3), Require::AtLeast(3)),
        ] {
            assert_eq!(serde_json::to_value(require).unwrap(), wire);
            assert_eq!(serde_json::from_value::<Require>(wire).unwrap(), require);
        }
        assert!(serde_json::from_value::<Require>(json!("some")).is_err());
        assert!(serde_json::from_value::<Require>(json!(-1)).is_err());
    }

    #[test]
    fn what_the_server_would_refuse_is_found_before_sending() {
        let short = Trigger::from(EventTrigger::proactive().within(Duration::from_secs(5)));
        assert!(short.check().unwrap_err().contains("at least 10 s"));
        Trigger::from(EventTrigger::proactive()).check().unwrap();
        Trigger::from(EventTrigger::reactive().within(Duration::from_secs(1)))
            .check()
            .unwrap();
        let too_many =
            Trigger::from(CompoundTrigger::new(Require::AtLeast(2)).trigger(EventTrigger::reactive()));
        assert!(too_many.check().unwrap_err().contains("cannot require 2"));
        let nested = Trigger::from(SequenceTrigger::new().trigger(short));
        assert!(nested.check().is_err());
    }

    #[test]
    fn normalizing_fills_in_what_the_server_fills_in() {
        let sent = Trigger::from(
            EventTrigger::proactive()
                .matching("l", ["b", "a", "b"])
                .related_spec(ResourceSpec::new()),
        );
        let kept = Trigger::from(
            EventTrigger::proactive()
                .within(Duration::from_secs(10))
                .matching("l", ["a", "b"]),
        );
        assert_ne!(sent, kept);
        assert_eq!(sent.normalized(), kept.normalized());
        let other = Trigger::Other(json!({ "type": "metric", "id": "x" }));
        assert_eq!(other.normalized(), Trigger::Other(json!({ "type": "metric" })));
    }
}
