//! [`Client`]: the entry point, with one handle per resource and the generated client underneath.

use std::sync::atomic::AtomicU32;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::concurrency::Acquire;
use crate::concurrency::queue::Coordinator;
use crate::config::Config;
use crate::generated;
use crate::http_client::{build_http_client, build_socket_http_client};
use crate::resources::concurrency_limits::ConcurrencyLimits;
use crate::resources::global_concurrency_limits::GlobalConcurrencyLimits;
use crate::retry::RetryPolicy;
use crate::transport::Transport;
use crate::{Error, response};

/// A Prefect API client. Cheap to clone; clones share connections.
///
/// ```no_run
/// # async fn demo() -> Result<(), prefect_client::Error> {
/// let client = prefect_client::Client::from_env()?;
/// let limit = client.concurrency_limits().create("database", 5).await?;
/// println!("{} allows {}", limit.tag, limit.concurrency_limit);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    raw: Arc<generated::Client>,
    config: Arc<Config>,
    pub(crate) coordinator: Arc<Coordinator>,
    /// Whether the HTTP client was built here from `config` (not brought by the caller).
    own_http: bool,
    /// The HTTP/1.1 client websockets are opened with, built on first use.
    socket_http: Arc<OnceLock<reqwest::Client>>,
    /// Items per page when lists are streamed: lowered to the server's cap once it names one.
    pub(crate) page_cap: Arc<AtomicU32>,
}

impl Client {
    /// A client for the API at `api_url` with Prefect's defaults and no credentials.
    ///
    /// # Errors
    /// [`Error::Config`] for a URL that is not an http(s) URL with a host, or carries
    /// credentials, a query or a fragment.
    pub fn new(api_url: &str) -> Result<Client, Error> {
        Client::builder(api_url).build()
    }

    /// A client from the user's Prefect settings, read as Prefect reads them (environment,
    /// `.env`, `prefect.toml`, `pyproject.toml`, the active profile); see [`Config::from_env`].
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting at fault and where its value came from.
    pub fn from_env() -> Result<Client, Error> {
        ClientBuilder::from_config(Config::from_env()?).build()
    }

    /// A client from explicit settings.
    ///
    /// # Errors
    /// [`Error::Config`] for a setting that cannot be used (see [`ClientBuilder::build`]).
    pub fn from_config(config: Config) -> Result<Client, Error> {
        ClientBuilder::from_config(config).build()
    }

    /// Starts building a client for the API at `api_url`.
    pub fn builder(api_url: &str) -> ClientBuilder {
        ClientBuilder {
            config: Config::new(api_url),
            http: None,
        }
    }

    /// The generated client, for any operation the handles do not cover. Its errors become
    /// typed with [`Error::from_generated`].
    ///
    /// ```no_run
    /// # async fn demo(client: &prefect_client::Client) -> Result<(), prefect_client::Error> {
    /// use prefect_client::{Error, types};
    /// let flows = match client.raw().read_flows(&types::ReadFlowsBody::default()).await {
    ///     Ok(response) => response.into_inner(),
    ///     Err(e) => return Err(Error::from_generated(e).await),
    /// };
    /// # Ok(()) }
    /// ```
    pub fn raw(&self) -> &crate::RawClient {
        &self.raw
    }

    /// A client for use on another Tokio runtime: pooled connections belong to the runtime that
    /// opened them, so one whose runtime is shutting down cannot be used. Built afresh from the
    /// same settings; a caller's own HTTP client is reused as it is.
    pub(crate) fn for_another_runtime(&self) -> Client {
        if !self.own_http {
            return self.clone();
        }
        Client::from_config((*self.config).clone()).unwrap_or_else(|_| self.clone())
    }

    /// The HTTP client websockets are opened with: one of the same settings, HTTP/1.1 only and
    /// without a whole-request timeout; or the caller's own, as it is.
    pub(crate) fn socket_http(&self) -> Result<reqwest::Client, Error> {
        if !self.own_http {
            return Ok(self.raw.client.clone());
        }
        if let Some(http) = self.socket_http.get() {
            return Ok(http.clone());
        }
        let http = build_socket_http_client(&self.config)?;
        Ok(self.socket_http.get_or_init(|| http).clone())
    }

    /// The `Authorization` header of every request, if credentials are set.
    pub(crate) fn authorization(&self) -> Option<&reqwest::header::HeaderValue> {
        self.raw.inner.authorization()
    }

    /// Adds what every request of the client carries, for requests sent past the generated
    /// client (websocket upgrades, plain JSON reads): the API version and the credentials.
    pub(crate) fn authorized(&self, mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request = request
            .header("x-prefect-api-version", crate::PREFECT_API_VERSION)
            .header(
                reqwest::header::USER_AGENT,
                crate::http_client::USER_AGENT.clone(),
            );
        if let Some(authorization) = self.authorization() {
            request = request.header(reqwest::header::AUTHORIZATION, authorization.clone());
        }
        request
    }

    /// `GET {api_url}/{route}` as plain JSON, with the client's credentials (no retries): for
    /// answers whose shape differs too much between releases for a generated type.
    pub(crate) async fn get_json(&self, route: &str) -> Result<serde_json::Value, Error> {
        let url = format!("{}/{route}", self.api_url().trim_end_matches('/'));
        let request = self.authorized(self.raw.client.get(url));
        let response = request
            .send()
            .await
            .map_err(|e| Error::from_reqwest(e).in_client(self.config()))?;
        if !response.status().is_success() {
            return Err(Error::from_response(response).await);
        }
        let body = response.bytes().await.map_err(Error::from_reqwest)?;
        serde_json::from_slice(&body).map_err(|source| Error::Decode {
            operation: format!("GET {route}"),
            excerpt: response::excerpt(&body),
            source,
        })
    }

    /// The settings this client was built from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The API URL requests go to.
    pub fn api_url(&self) -> &str {
        self.config.api_url()
    }

    /// Tag concurrency limits (v1): `POST /concurrency_limits/` and friends.
    pub fn concurrency_limits(&self) -> ConcurrencyLimits<'_> {
        ConcurrencyLimits::new(self)
    }

    /// Task runs: read, list, their states.
    pub fn task_runs(&self) -> crate::resources::task_runs::TaskRuns<'_> {
        crate::resources::task_runs::TaskRuns::new(self)
    }

    /// Flows: create, read by id or name, list.
    pub fn flows(&self) -> crate::resources::flows::Flows<'_> {
        crate::resources::flows::Flows::new(self)
    }

    /// Deployments: read by id or `flow/deployment` name, list, create, run.
    pub fn deployments(&self) -> crate::resources::deployments::Deployments<'_> {
        crate::resources::deployments::Deployments::new(self)
    }

    /// Flow runs: read, filter, wait for a final state, set state, cancel, delete, logs.
    pub fn flow_runs(&self) -> crate::resources::flow_runs::FlowRuns<'_> {
        crate::resources::flow_runs::FlowRuns::new(self)
    }

    /// Variables: typed get and set, list, delete.
    pub fn variables(&self) -> crate::resources::variables::Variables<'_> {
        crate::resources::variables::Variables::new(self)
    }

    /// Blocks: typed configuration documents (your own types, Prefect's `Secret`, `Webhook`,
    /// `LocalFileSystem`), their block types and schemas.
    pub fn blocks(&self) -> crate::resources::blocks::Blocks<'_> {
        crate::resources::blocks::Blocks::new(self)
    }

    /// Logs: write a batch, read with filters.
    pub fn logs(&self) -> crate::resources::logs::Logs<'_> {
        crate::resources::logs::Logs::new(self)
    }

    /// Artifacts: markdown, table and link artifacts; latest by key.
    pub fn artifacts(&self) -> crate::resources::artifacts::Artifacts<'_> {
        crate::resources::artifacts::Artifacts::new(self)
    }

    /// Events: emit and read.
    pub fn events(&self) -> crate::resources::events::Events<'_> {
        crate::resources::events::Events::new(self)
    }

    /// Automations: triggers on events and the actions they take; create, or apply by name.
    pub fn automations(&self) -> crate::resources::automations::Automations<'_> {
        crate::resources::automations::Automations::new(self)
    }

    /// Work pools and their work queues.
    pub fn work_pools(&self) -> crate::resources::work_pools::WorkPools<'_> {
        crate::resources::work_pools::WorkPools::new(self)
    }

    /// Global concurrency limits (v2): `/v2/concurrency_limits/...`.
    pub fn global_concurrency_limits(&self) -> GlobalConcurrencyLimits<'_> {
        GlobalConcurrencyLimits::new(self)
    }

    /// Slots of the named global limits, held under a lease while work runs: the Rust form of
    /// Prefect's `concurrency()`. See [`Acquire`].
    ///
    /// ```no_run
    /// # async fn demo(client: &prefect_client::Client) -> Result<(), prefect_client::Error> {
    /// let guard = client.concurrency(["database"]).acquire().await?;
    /// // ... at most `limit` holders run this at once, across every process using the limit ...
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub fn concurrency(&self, names: impl IntoIterator<Item = impl AsRef<str>>) -> Acquire {
        Acquire::new(
            self.clone(),
            names.into_iter().map(|n| n.as_ref().to_string()).collect(),
        )
    }

    /// A new flow run around Rust code, of the flow `flow` (created if missing):
    /// `client.new_flow_run("ingest").run(|ctx| async { ... })`; see
    /// [`FlowScope`](crate::runs::FlowScope). (The flows themselves are [`Client::flows`].)
    pub fn new_flow_run(&self, flow: &str) -> crate::runs::FlowScope {
        crate::runs::FlowScope::new(self, flow)
    }

    /// Serves deployments of these flows from this process, as Prefect's `flow.serve()`: add
    /// them with [`Serve::deployment`](crate::serve::Serve::deployment), then await it; see
    /// [`serve`](crate::serve).
    pub fn serve<'a>(
        &self,
        flows: impl IntoIterator<Item = &'a crate::serve::RustFlow>,
    ) -> crate::serve::Serve {
        crate::serve::Serve::new(self, flows)
    }

    /// A worker on the work pool `pool`, executing the pool's runs of these flows in this
    /// process; await it. See [`serve`](crate::serve).
    pub fn worker<'a>(
        &self,
        pool: &str,
        flows: impl IntoIterator<Item = &'a crate::serve::RustFlow>,
    ) -> crate::serve::Worker {
        crate::serve::Worker::new(self, pool, flows)
    }

    /// HTTP requests this client (and its clones) sent so far, retries included.
    pub fn requests_sent(&self) -> u64 {
        self.raw
            .inner
            .requests_sent
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `GET /health`: `Ok(())` when the server is up and answers it is healthy.
    ///
    /// # Errors
    /// [`Error::Unhealthy`] when the server answers that it is not healthy; any other error of
    /// the request ([`Error::Connect`] when nothing answers).
    pub async fn health(&self) -> Result<(), Error> {
        let healthy = crate::resources::call!(self, health_check())?;
        if healthy {
            Ok(())
        } else {
            Err(Error::Unhealthy {
                url: self.api_url().to_string(),
            })
        }
    }

    /// `GET /admin/version`: the server's Prefect version.
    ///
    /// # Errors
    /// Any error of the request ([`Error::Connect`] when nothing answers,
    /// [`Error::NotFound`] when the URL is not Prefect's API).
    pub async fn server_version(&self) -> Result<String, Error> {
        crate::resources::call!(self, read_version())
    }
}

/// Builds a [`Client`]: URL, credentials, timeouts, retries, or a caller's own
/// `reqwest::Client`.
///
/// ```
/// # fn demo() -> Result<(), prefect_client::Error> {
/// let client = prefect_client::Client::builder("https://api.prefect.cloud/api/accounts/A/workspaces/W")
///     .api_key("pnu_...")
///     .request_timeout(std::time::Duration::from_secs(30))
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "call .build() to get a Client"]
pub struct ClientBuilder {
    config: Result<Config, Error>,
    http: Option<reqwest::Client>,
}

impl ClientBuilder {
    /// Starts from explicit settings.
    pub fn from_config(config: Config) -> ClientBuilder {
        ClientBuilder {
            config: Ok(config),
            http: None,
        }
    }

    fn map(mut self, f: impl FnOnce(Config) -> Config) -> ClientBuilder {
        self.config = self.config.map(f);
        self
    }

    /// Sends `Authorization: Bearer <key>` (Prefect Cloud API keys; `PREFECT_API_KEY`).
    pub fn api_key(self, key: impl Into<String>) -> ClientBuilder {
        self.map(|c| c.with_api_key(key))
    }

    /// Sends `Authorization: Basic <base64(auth_string)>`: a self-hosted server with
    /// `PREFECT_SERVER_API_AUTH_STRING`, given as `user:password` (`PREFECT_API_AUTH_STRING`).
    pub fn auth_string(self, auth_string: impl Into<String>) -> ClientBuilder {
        self.map(|c| c.with_auth_string(auth_string))
    }

    /// The longest a whole request (connect, send, read the body) may take (default 60 s;
    /// `PREFECT_API_REQUEST_TIMEOUT`).
    pub fn request_timeout(self, timeout: Duration) -> ClientBuilder {
        self.map(|c| c.with_request_timeout(timeout))
    }

    /// The longest connecting may take (default 10 s).
    pub fn connect_timeout(self, timeout: Duration) -> ClientBuilder {
        self.map(|c| c.with_connect_timeout(timeout))
    }

    /// How requests are retried (default [`RetryPolicy::standard`], with
    /// `PREFECT_CLIENT_MAX_RETRIES` and `PREFECT_CLIENT_RETRY_EXTRA_CODES` applied by
    /// [`Config::from_env`]).
    pub fn retry_policy(self, policy: RetryPolicy) -> ClientBuilder {
        self.map(|c| c.with_retry_policy(policy))
    }

    /// How many times a failed request is retried (default 5): the retry policy's
    /// [`with_max_retries`](RetryPolicy::with_max_retries).
    pub fn max_retries(self, retries: u32) -> ClientBuilder {
        self.map(|c| c.with_max_retries(retries))
    }

    /// Status codes retried besides 429, 502, 503 and 504: the retry policy's
    /// [`with_extra_codes`](RetryPolicy::with_extra_codes).
    pub fn retry_extra_codes(self, codes: impl IntoIterator<Item = u16>) -> ClientBuilder {
        self.map(|c| c.with_retry_extra_codes(codes))
    }

    /// Trusts the certificates of this PEM file too (`PREFECT_API_SSL_CERT_FILE`): a private
    /// CA that signed the server's certificate, or the server's own (self-signed) certificate.
    pub fn ssl_cert_file(self, path: impl Into<std::path::PathBuf>) -> ClientBuilder {
        self.map(|c| c.with_ssl_cert_file(path))
    }

    /// Whether to fetch and send CSRF tokens to servers that want them (default true;
    /// `PREFECT_CLIENT_CSRF_SUPPORT_ENABLED`).
    pub fn csrf_support(self, enabled: bool) -> ClientBuilder {
        self.map(|c| c.with_csrf_support(enabled))
    }

    /// Whether to offer HTTP/2 to the server (default false, as in Prefect;
    /// `PREFECT_API_ENABLE_HTTP2`): over TLS, the server picks HTTP/2 or HTTP/1.1. Takes effect
    /// in a build with the crate's `http2` feature; without it, HTTP/1.1 is used and a warning
    /// is logged when the client is built.
    pub fn http2(self, enabled: bool) -> ClientBuilder {
        self.map(|c| c.with_http2(enabled))
    }

    /// How often each flow run this client executes (served, handed over, or started with
    /// [`Client::new_flow_run`]) emits a `prefect.flow-run.heartbeat` event, as Prefect's
    /// engine does (default 180 s; `PREFECT_FLOWS_HEARTBEAT_FREQUENCY`); `None` turns
    /// heartbeats off. A flow's own `heartbeat(..)` wins over it.
    pub fn flow_heartbeat(self, every: Option<Duration>) -> ClientBuilder {
        self.map(|c| c.with_flow_heartbeat(every))
    }

    /// Skips TLS certificate checks (`PREFECT_API_TLS_INSECURE_SKIP_VERIFY`): for tests only;
    /// a warning is logged when the client is built.
    pub fn tls_insecure_skip_verify(self, skip: bool) -> ClientBuilder {
        self.map(|c| c.with_tls_insecure_skip_verify(skip))
    }

    /// Uses the caller's HTTP client (its own TLS, proxy and timeouts) instead of building one;
    /// the SDK still adds credentials and Prefect's headers to every request, its User-Agent
    /// included (Prefect's server reads the client's release from it to decide who renews a
    /// deployment run's concurrency lease).
    /// Its timeouts and TLS settings are the caller's: `PREFECT_API_REQUEST_TIMEOUT` and the TLS
    /// settings of the [`Config`] do not apply. If your reqwest has no TLS backend feature, call
    /// [`install_tls_provider`](crate::install_tls_provider) before building it.
    pub fn http_client(mut self, client: reqwest::Client) -> ClientBuilder {
        self.http = Some(client);
        self
    }

    /// Checks the settings and builds the client; no request is sent.
    ///
    /// # Errors
    /// [`Error::Config`] for a setting that cannot be used: a zero timeout, credentials that
    /// cannot be sent as a header, a certificate file that cannot be read or holds no PEM
    /// certificates; an invalid URL given to [`Client::builder`].
    pub fn build(self) -> Result<Client, Error> {
        let config = self.config?;
        config.check()?;
        let transport = Transport::new(&config)?;
        let own_http = self.http.is_none();
        let http = match self.http {
            Some(http) => http,
            None => build_http_client(&config)?,
        };
        let raw = generated::Client::new_with_client(config.api_url(), http, transport);
        Ok(Client {
            raw: Arc::new(raw),
            config: Arc::new(config),
            coordinator: Arc::default(),
            own_http,
            socket_http: Arc::default(),
            page_cap: Arc::new(AtomicU32::new(crate::resources::PAGE_SIZE)),
        })
    }
}
