//! [`RustFlow`]: a flow written in Rust, as Prefect runs it: a name, a handler
//! `async (RunContext, Params) -> Result<T, E>`, the JSON Schema of `Params` (the form of a run
//! in Prefect's UI), and what a deployment's run of it needs (retries, timeout, version,
//! heartbeats).

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::resources::deployments::DeploymentSpec;
use crate::runs::RunContext;

/// What a flow's handler made of a run: `Err` holds the failure's message.
pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A handler with its parameters decoded: `Err` names the parameter that does not fit.
type Handler = dyn Fn(RunContext, &Map<String, Value>) -> Result<HandlerFuture, String> + Send + Sync;
/// Checks that parameters decode, without running anything.
type Check = dyn Fn(&Map<String, Value>) -> Result<(), String> + Send + Sync;

/// A flow written in Rust, for Prefect to run: served by this process
/// ([`Client::serve`](crate::Client::serve)), run by a worker of this process
/// ([`Client::worker`](crate::Client::worker)), or executed as a run Prefect's own worker handed
/// over ([`run_handed_over`](super::run_handed_over)). Cheap to clone.
///
/// The parameters are a type of your own, `Deserialize` for the run's parameters and
/// `JsonSchema` (the crate `schemars`) for the form Prefect's UI builds for a run:
///
/// ```
/// use prefect_client::runs::RunContext;
/// use prefect_client::serve::RustFlow;
///
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct Params {
///     /// How many rows.
///     #[serde(default = "three")]
///     rows: u64,
/// }
/// fn three() -> u64 { 3 }
///
/// let flow = RustFlow::new("load-rows", |ctx: RunContext, params: Params| async move {
///     for row in 0..params.rows {
///         ctx.task("row").run(|| async move { Ok::<_, std::io::Error>(row) }).await?;
///     }
///     Ok::<_, prefect_client::runs::TaskError<std::io::Error>>(params.rows)
/// })
/// .retries(2, std::time::Duration::from_secs(10));
/// assert_eq!(flow.parameter_schema()["properties"]["rows"]["default"], 3);
/// ```
#[derive(Clone)]
pub struct RustFlow {
    pub(crate) name: String,
    schema: Map<String, Value>,
    handler: Arc<Handler>,
    check: Arc<Check>,
    pub(crate) options: FlowOptions,
}

/// What a deployment's run of a flow needs besides its handler.
#[derive(Debug, Clone, Default)]
pub(crate) struct FlowOptions {
    pub(crate) retries: u32,
    pub(crate) retry_delay: Duration,
    pub(crate) timeout: Option<Duration>,
    pub(crate) version: Option<String>,
    pub(crate) heartbeat: Option<Duration>,
}

impl std::fmt::Debug for RustFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RustFlow")
            .field("name", &self.name)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl RustFlow {
    /// The flow `name` (Prefect's flow of that name), run by `handler` with the run's
    /// parameters decoded as `P`.
    ///
    /// The handler's `Err` fails the run (its `Display` as the message); a panic crashes it. A
    /// run whose parameters do not decode as `P` fails before the handler runs, with a message
    /// naming the parameter.
    pub fn new<P, F, Fut, T, E>(name: &str, handler: F) -> RustFlow
    where
        P: DeserializeOwned + schemars::JsonSchema + Send + 'static,
        F: Fn(RunContext, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Display + Send + 'static,
    {
        let handler = Arc::new(handler);
        let run = move |ctx: RunContext, parameters: &Map<String, Value>| -> Result<HandlerFuture, String> {
            let params: P = decode(parameters)?;
            let future = handler(ctx, params);
            Ok(Box::pin(async move {
                future.await.map(drop).map_err(|e| e.to_string())
            }))
        };
        RustFlow {
            name: name.to_string(),
            schema: parameter_schema::<P>(),
            handler: Arc::new(run),
            check: Arc::new(|parameters: &Map<String, Value>| decode::<P>(parameters).map(drop)),
            options: FlowOptions::default(),
        }
    }

    /// A flow without parameters: `handler` gets the run's context only.
    pub fn without_parameters<F, Fut, T, E>(name: &str, handler: F) -> RustFlow
    where
        F: Fn(RunContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Display + Send + 'static,
    {
        RustFlow::new(name, move |ctx, _: NoParameters| handler(ctx))
    }

    /// Retries a failed run up to `retries` times, `delay` apart, in this process: the server
    /// answers the failure with AwaitingRetry, and the run runs again when the delay is over.
    pub fn retries(mut self, retries: u32, delay: Duration) -> RustFlow {
        self.options.retries = retries;
        self.options.retry_delay = delay;
        self
    }

    /// Stops a run (each attempt) after this long: it ends FAILED, named "TimedOut".
    pub fn timeout(mut self, limit: Duration) -> RustFlow {
        self.options.timeout = Some(limit);
        self
    }

    /// The flow's version, recorded on each of its runs (`flow_version`).
    pub fn version(mut self, version: impl Into<String>) -> RustFlow {
        self.options.version = Some(version.into());
        self
    }

    /// Emits `prefect.flow-run.heartbeat` events this often while a run runs, for crash
    /// detection (default: the client's [`flow_heartbeat`](crate::Config::flow_heartbeat),
    /// Prefect's `PREFECT_FLOWS_HEARTBEAT_FREQUENCY` or its legacy name, 180 s unless set).
    pub fn heartbeat(mut self, every: Duration) -> RustFlow {
        self.options.heartbeat = Some(every.max(Duration::from_secs(1)));
        self
    }

    /// The flow's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The JSON Schema of its parameters, as Prefect's `parameter_openapi_schema`.
    pub fn parameter_schema(&self) -> &Map<String, Value> {
        &self.schema
    }

    /// A deployment `name` of this flow, with its parameter schema: set its schedules and
    /// options, then serve it or apply it.
    pub fn deployment(&self, name: &str) -> DeploymentSpec {
        DeploymentSpec::new(&self.name, name).parameter_schema(self.schema.clone())
    }

    /// Checks that a run's parameters decode; `Err` names what does not fit.
    pub(crate) fn check(&self, parameters: &Map<String, Value>) -> Result<(), String> {
        (self.check)(parameters)
    }

    /// Decodes the parameters and starts the handler; `Err` names what does not fit.
    pub(crate) fn start(
        &self,
        ctx: RunContext,
        parameters: &Map<String, Value>,
    ) -> Result<HandlerFuture, String> {
        (self.handler)(ctx, parameters)
    }
}

/// The parameters of a flow that has none.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct NoParameters {}

/// The run's parameters as `P`; the error names the parameter at fault.
fn decode<P: DeserializeOwned>(parameters: &Map<String, Value>) -> Result<P, String> {
    serde_path_to_error::deserialize(Value::Object(parameters.clone())).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            format!("the flow run's parameters do not fit the flow: {inner}")
        } else {
            format!("the flow run's parameter `{path}` does not fit the flow: {inner}")
        }
    })
}

/// The JSON Schema of `P` as Prefect writes a flow's: an object titled "Parameters" whose
/// properties carry their `position`, with references under `#/definitions/`.
fn parameter_schema<P: schemars::JsonSchema>() -> Map<String, Value> {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let schema = generator.into_root_schema_for::<P>();
    let mut schema = match serde_json::to_value(schema) {
        Ok(Value::Object(object)) => object,
        _ => Map::new(),
    };
    schema.remove("$schema");
    schema.insert("title".into(), Value::String("Parameters".into()));
    schema.insert("type".into(), Value::String("object".into()));
    let properties = schema
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(properties) = properties {
        for (position, (_, property)) in properties.iter_mut().enumerate() {
            if let Value::Object(property) = property {
                property.insert("position".into(), Value::from(position));
            }
        }
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Params {
        #[serde(default = "three")]
        rows: u64,
        #[serde(default)]
        sleep_s: f64,
        mode: Mode,
    }

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    enum Mode {
        Fast,
        Slow,
    }

    fn three() -> u64 {
        3
    }

    #[test]
    fn the_schema_is_prefects_parameters_object() {
        let schema = parameter_schema::<Params>();
        assert_eq!(schema["title"], "Parameters");
        assert_eq!(schema["type"], "object");
        assert!(!schema.contains_key("$schema"));
        assert_eq!(schema["properties"]["rows"]["default"], 3);
        assert_eq!(schema["properties"]["rows"]["type"], "integer");
        assert_eq!(schema["properties"]["rows"]["minimum"], 0);
        assert!(schema["properties"]["rows"]["position"].is_u64());
        assert_eq!(schema["required"], serde_json::json!(["mode"]));
        let reference = schema["properties"]["mode"]["$ref"].as_str().unwrap();
        assert!(reference.starts_with("#/definitions/"), "{reference}");
        assert!(schema["definitions"]["Mode"].is_object());
        let empty = parameter_schema::<NoParameters>();
        assert_eq!(empty["properties"], serde_json::json!({}));
    }

    #[test]
    fn parameters_that_do_not_fit_name_the_field() {
        let bad = |json: serde_json::Value| {
            let Value::Object(map) = json else { panic!() };
            decode::<Params>(&map).err().unwrap()
        };
        let text = bad(serde_json::json!({ "rows": "many", "mode": "Fast" }));
        assert!(text.contains("`rows`"), "{text}");
        let text = bad(serde_json::json!({ "rows": 1 }));
        assert!(text.contains("mode"), "{text}");
        let Value::Object(good) = serde_json::json!({ "mode": "Slow" }) else {
            panic!()
        };
        assert_eq!(decode::<Params>(&good).unwrap().rows, 3);
    }
}
