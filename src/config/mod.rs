//! Client settings, read the way Prefect's own client reads them (see [`Config::from_env`] for
//! the order of sources), with [`ConfigError`] naming the setting and its origin when one is
//! wrong.

mod error;
mod sources;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

pub use error::{ConfigError, Origin};
use sources::{Setting, Sources};

use crate::retry::RetryPolicy;

/// Prefect's default `PREFECT_API_REQUEST_TIMEOUT`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to wait for a TCP (and TLS) connection, by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest timeout kept: a longer one (Prefect accepts any number of seconds) is this.
const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// The settings a [`Client`](crate::Client) is built from.
///
/// Read the user's Prefect settings with [`Config::from_env`] (or [`Config::new`] for an API URL
/// alone), look at them (each value and where it came from: [`Config::origin`]), then build a
/// client from them with [`ClientBuilder::from_config`](crate::ClientBuilder::from_config),
/// where any of them is set in code: the builder is the one place options are set. `Debug`
/// never shows the API key or auth string.
#[derive(Clone)]
pub struct Config {
    pub(crate) api_url: reqwest::Url,
    pub(crate) api_key: Option<SecretString>,
    pub(crate) auth_string: Option<SecretString>,
    pub(crate) request_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) ssl_cert_file: Option<PathBuf>,
    pub(crate) tls_insecure_skip_verify: bool,
    pub(crate) csrf_support: bool,
    pub(crate) enable_http2: bool,
    /// How often a flow run this process executes beats (`None`: never).
    pub(crate) flow_heartbeat: Option<Duration>,
    /// Where each setting read from a source came from (others were set in code).
    origins: BTreeMap<&'static str, Origin>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |s: &Option<SecretString>| if s.is_some() { "[REDACTED]" } else { "None" };
        f.debug_struct("Config")
            .field("api_url", &self.api_url.as_str())
            .field("api_key", &hidden(&self.api_key))
            .field("auth_string", &hidden(&self.auth_string))
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .field("ssl_cert_file", &self.ssl_cert_file)
            .field("tls_insecure_skip_verify", &self.tls_insecure_skip_verify)
            .field("csrf_support", &self.csrf_support)
            .field("enable_http2", &self.enable_http2)
            .field("flow_heartbeat", &self.flow_heartbeat)
            .finish()
    }
}

impl Config {
    /// Settings for the API at `api_url` (`http://127.0.0.1:4200/api`, or Prefect Cloud's
    /// `https://api.prefect.cloud/api/accounts/{account}/workspaces/{workspace}`), with
    /// Prefect's defaults for everything else.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) when `api_url` is not an http(s) URL with a host,
    /// or carries credentials, a query or a fragment.
    pub fn new(api_url: &str) -> Result<Config, crate::Error> {
        Ok(Config {
            api_url: parse_api_url(api_url, None)?,
            api_key: None,
            auth_string: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            retry: RetryPolicy::standard(),
            ssl_cert_file: None,
            tls_insecure_skip_verify: false,
            csrf_support: true,
            enable_http2: false,
            flow_heartbeat: Some(DEFAULT_FLOW_HEARTBEAT),
            origins: BTreeMap::new(),
        })
    }

    /// Reads the user's Prefect settings as Prefect's own client does: `PREFECT_API_URL`,
    /// `PREFECT_API_KEY`, `PREFECT_API_AUTH_STRING`, `PREFECT_API_REQUEST_TIMEOUT`,
    /// `PREFECT_CLIENT_MAX_RETRIES`, `PREFECT_CLIENT_RETRY_EXTRA_CODES`,
    /// `PREFECT_API_SSL_CERT_FILE` (else `SSL_CERT_FILE`), `PREFECT_API_TLS_INSECURE_SKIP_VERIFY`,
    /// `PREFECT_API_ENABLE_HTTP2`, `PREFECT_CLIENT_CSRF_SUPPORT_ENABLED` and
    /// `PREFECT_FLOWS_HEARTBEAT_FREQUENCY` (else its legacy name
    /// `PREFECT_RUNNER_HEARTBEAT_FREQUENCY`), each from the first source that sets it:
    ///
    /// 1. the environment (set to the empty string counts: `PREFECT_API_KEY=` sends no key);
    /// 2. `.env` in the working directory;
    /// 3. `prefect.toml` in the working directory (`[api]` `url`, `key`, `auth_string`,
    ///    `request_timeout`, `ssl_cert_file`, `tls_insecure_skip_verify`, `enable_http2`; `[client]`
    ///    `max_retries`, `retry_extra_codes`, `csrf_support_enabled`; `[flows]`
    ///    `heartbeat_frequency`);
    /// 4. `[tool.prefect]` of `pyproject.toml` in the working directory (the same tables);
    /// 5. the active profile of the profiles file (`PREFECT_PROFILE` picks another;
    ///    `PREFECT_PROFILES_PATH` or `profiles_path` another file, else
    ///    `$PREFECT_HOME/profiles.toml`).
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) naming the setting and where its value came
    /// from: no API URL anywhere, a value that does not parse, an unknown profile, a settings
    /// file that cannot be read or is not valid TOML.
    pub fn from_env() -> Result<Config, crate::Error> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Config::from_env`], reading variables through `env` instead of the process
    /// environment (the files of the working directory are still read).
    ///
    /// # Errors
    /// As [`Config::from_env`].
    pub fn from_lookup(env: impl Fn(&str) -> Option<String>) -> Result<Config, crate::Error> {
        let dir = std::env::current_dir().unwrap_or_default();
        Config::from_lookup_in(env, &dir)
    }

    /// Like [`Config::from_lookup`], reading `.env`, `prefect.toml` and `pyproject.toml` of
    /// `dir` as if it were the working directory (a tool acting for a project elsewhere).
    ///
    /// # Errors
    /// As [`Config::from_env`].
    pub fn from_lookup_in(env: impl Fn(&str) -> Option<String>, dir: &Path) -> Result<Config, crate::Error> {
        let sources = Sources::load(&env, dir)?;
        Ok(Config::from_sources(&sources, &env)?)
    }

    fn from_sources(sources: &Sources, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let Some((url, origin)) = sources.get(&sources::API_URL) else {
            return Err(ConfigError::missing(
                sources::API_URL.name,
                format!(
                    "is not set (looked in {}); set it to your server's API, e.g. \
                     http://127.0.0.1:4200/api, or for Prefect Cloud \
                     https://api.prefect.cloud/api/accounts/<account>/workspaces/<workspace>",
                    sources.searched()
                ),
            ));
        };
        let mut config =
            Config::new("http://placeholder").map_err(|_| ConfigError::other("placeholder URL"))?;
        config.api_url = parse_api_url(&url, Some((&sources::API_URL, &origin)))?;
        config.origins.insert(sources::API_URL.name, origin);
        let mut read = |setting: &Setting| {
            sources.get(setting).map(|(value, origin)| {
                config.origins.insert(setting.name, origin.clone());
                (value, origin)
            })
        };
        // An empty key or auth string sends none, as in Prefect.
        let api_key = read(&sources::API_KEY).filter(|(v, _)| !v.is_empty());
        let auth_string = read(&sources::API_AUTH_STRING).filter(|(v, _)| !v.is_empty());
        let request_timeout = read(&sources::API_REQUEST_TIMEOUT)
            .map(|(v, o)| parse_seconds(&sources::API_REQUEST_TIMEOUT, &v, o))
            .transpose()?;
        let max_retries = read(&sources::CLIENT_MAX_RETRIES)
            .map(|(v, o)| parse_count(&sources::CLIENT_MAX_RETRIES, &v, o))
            .transpose()?;
        let extra_codes = read(&sources::CLIENT_RETRY_EXTRA_CODES)
            .map(|(v, o)| parse_status_codes(&sources::CLIENT_RETRY_EXTRA_CODES, &v, o))
            .transpose()?;
        let ssl_cert_file = read(&sources::API_SSL_CERT_FILE);
        let skip_verify = read(&sources::API_TLS_INSECURE_SKIP_VERIFY)
            .map(|(v, o)| parse_bool(&sources::API_TLS_INSECURE_SKIP_VERIFY, &v, o))
            .transpose()?;
        let http2 = read(&sources::API_ENABLE_HTTP2)
            .map(|(v, o)| parse_bool(&sources::API_ENABLE_HTTP2, &v, o))
            .transpose()?;
        let heartbeat = match read(&sources::FLOWS_HEARTBEAT_FREQUENCY) {
            Some(found) => Some((&sources::FLOWS_HEARTBEAT_FREQUENCY, found)),
            None => read(&sources::RUNNER_HEARTBEAT_FREQUENCY)
                .map(|found| (&sources::RUNNER_HEARTBEAT_FREQUENCY, found)),
        }
        .map(|(setting, (v, o))| parse_heartbeat(setting, &v, o))
        .transpose()?;
        let csrf = read(&sources::CLIENT_CSRF_SUPPORT_ENABLED)
            .map(|(v, o)| parse_bool(&sources::CLIENT_CSRF_SUPPORT_ENABLED, &v, o))
            .transpose()?;
        config.api_key = api_key.map(|(v, _)| v.into());
        config.auth_string = auth_string.map(|(v, _)| v.into());
        if let Some(timeout) = request_timeout {
            config.request_timeout = timeout;
        }
        if let Some(retries) = max_retries {
            config.retry = config.retry.with_max_retries(retries);
        }
        if let Some(codes) = extra_codes {
            config.retry = config.retry.with_extra_codes(codes);
        }
        match ssl_cert_file {
            Some((path, _)) if !path.is_empty() => config.ssl_cert_file = Some(PathBuf::from(path)),
            Some(_) => {}
            // Prefect's default for the setting.
            None => {
                if let Some(path) = env("SSL_CERT_FILE").filter(|p| !p.is_empty()) {
                    config.ssl_cert_file = Some(PathBuf::from(path));
                    config
                        .origins
                        .insert(sources::API_SSL_CERT_FILE.name, Origin::Environment);
                }
            }
        }
        if let Some(skip) = skip_verify {
            config.tls_insecure_skip_verify = skip;
        }
        if let Some(csrf) = csrf {
            config.csrf_support = csrf;
        }
        if let Some(http2) = http2 {
            config.enable_http2 = http2;
        }
        if let Some(heartbeat) = heartbeat {
            config.flow_heartbeat = heartbeat;
        }
        Ok(config)
    }

    /// Where a setting (by its Prefect name, `PREFECT_API_SSL_CERT_FILE`, …) came from:
    /// [`Origin::Code`] for one set in code or left at its default.
    pub fn origin(&self, setting: &str) -> Origin {
        self.origins.get(setting).cloned().unwrap_or(Origin::Code)
    }

    /// Marks a setting as set in code.
    fn set_in_code(mut self, setting: &'static str) -> Config {
        self.origins.remove(setting);
        self
    }

    /// Sends `Authorization: Bearer <key>` (Prefect Cloud API keys).
    pub(crate) fn with_api_key(mut self, key: impl Into<String>) -> Config {
        self.api_key = Some(SecretString::from(key.into()));
        self.set_in_code(sources::API_KEY.name)
    }

    /// Sends `Authorization: Basic <base64(auth_string)>` (a self-hosted server with
    /// `PREFECT_SERVER_API_AUTH_STRING`, given as `user:password`).
    pub(crate) fn with_auth_string(mut self, auth_string: impl Into<String>) -> Config {
        self.auth_string = Some(SecretString::from(auth_string.into()));
        self.set_in_code(sources::API_AUTH_STRING.name)
    }

    /// The longest a whole request (connect, send, read the body) may take.
    pub(crate) fn with_request_timeout(mut self, timeout: Duration) -> Config {
        self.request_timeout = timeout.min(MAX_TIMEOUT);
        self.set_in_code(sources::API_REQUEST_TIMEOUT.name)
    }

    /// The longest connecting may take.
    pub(crate) fn with_connect_timeout(mut self, timeout: Duration) -> Config {
        self.connect_timeout = timeout.min(MAX_TIMEOUT);
        self
    }

    /// How requests are retried (default [`RetryPolicy::standard`], with
    /// `PREFECT_CLIENT_MAX_RETRIES` and `PREFECT_CLIENT_RETRY_EXTRA_CODES` applied by
    /// [`Config::from_env`]).
    pub(crate) fn with_retry_policy(mut self, policy: RetryPolicy) -> Config {
        self.retry = policy;
        self.set_in_code(sources::CLIENT_MAX_RETRIES.name)
            .set_in_code(sources::CLIENT_RETRY_EXTRA_CODES.name)
    }

    /// How many times a failed request is retried: the policy's
    /// [`with_max_retries`](RetryPolicy::with_max_retries).
    pub(crate) fn with_max_retries(mut self, retries: u32) -> Config {
        self.retry = self.retry.with_max_retries(retries);
        self.set_in_code(sources::CLIENT_MAX_RETRIES.name)
    }

    /// Status codes retried besides 429, 502, 503 and 504: the policy's
    /// [`with_extra_codes`](RetryPolicy::with_extra_codes).
    pub(crate) fn with_retry_extra_codes(mut self, codes: impl IntoIterator<Item = u16>) -> Config {
        self.retry = self.retry.with_extra_codes(codes);
        self.set_in_code(sources::CLIENT_RETRY_EXTRA_CODES.name)
    }

    /// Trusts the certificates of this PEM file too (`PREFECT_API_SSL_CERT_FILE`): the CA that
    /// signed the server's certificate, or the server's own certificate (a self-signed one).
    pub(crate) fn with_ssl_cert_file(mut self, path: impl Into<PathBuf>) -> Config {
        self.ssl_cert_file = Some(path.into());
        self.set_in_code(sources::API_SSL_CERT_FILE.name)
    }

    /// Whether to fetch and send CSRF tokens to servers that want them
    /// (`PREFECT_CLIENT_CSRF_SUPPORT_ENABLED`, default true).
    pub(crate) fn with_csrf_support(mut self, enabled: bool) -> Config {
        self.csrf_support = enabled;
        self.set_in_code(sources::CLIENT_CSRF_SUPPORT_ENABLED.name)
    }

    /// Whether to offer HTTP/2 to the server (`PREFECT_API_ENABLE_HTTP2`, default false, as in
    /// Prefect): over TLS, the server picks HTTP/2 or HTTP/1.1. Takes effect in a build with the
    /// crate's `http2` feature; without it, HTTP/1.1 is used and a warning is logged when the
    /// client is built.
    pub(crate) fn with_http2(mut self, enabled: bool) -> Config {
        self.enable_http2 = enabled;
        self.set_in_code(sources::API_ENABLE_HTTP2.name)
    }

    /// How often each flow run this process executes (served, handed over, or started with
    /// [`Client::new_flow_run`](crate::Client::new_flow_run)) emits a
    /// `prefect.flow-run.heartbeat` event, as Prefect's engine does
    /// (`PREFECT_FLOWS_HEARTBEAT_FREQUENCY`, default 180 s); `None` turns heartbeats off. A
    /// flow's own `heartbeat(..)` wins over it.
    pub(crate) fn with_flow_heartbeat(mut self, every: Option<Duration>) -> Config {
        self.flow_heartbeat = every.map(|e| e.max(MIN_FLOW_HEARTBEAT));
        self.set_in_code(sources::FLOWS_HEARTBEAT_FREQUENCY.name)
            .set_in_code(sources::RUNNER_HEARTBEAT_FREQUENCY.name)
    }

    /// How often a flow run this process executes beats (`None`: never).
    pub fn flow_heartbeat(&self) -> Option<Duration> {
        self.flow_heartbeat
    }

    /// Skips TLS certificate checks (`PREFECT_API_TLS_INSECURE_SKIP_VERIFY`): for tests only;
    /// a warning is logged when the client is built.
    pub(crate) fn with_tls_insecure_skip_verify(mut self, skip: bool) -> Config {
        self.tls_insecure_skip_verify = skip;
        self.set_in_code(sources::API_TLS_INSECURE_SKIP_VERIFY.name)
    }

    /// The API URL, without a trailing slash.
    pub fn api_url(&self) -> &str {
        self.api_url.as_str().trim_end_matches('/')
    }

    /// The whole-request timeout.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// How requests are retried.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// How many times a failed request is retried.
    pub fn max_retries(&self) -> u32 {
        self.retry.max_retries()
    }

    /// The extra certificates trusted (`PREFECT_API_SSL_CERT_FILE`), if any.
    pub fn ssl_cert_file(&self) -> Option<&Path> {
        self.ssl_cert_file.as_deref()
    }

    /// Whether an API key is set (the key itself is never shown).
    pub fn has_api_key(&self) -> bool {
        self.api_key.is_some()
    }

    /// Whether an auth string is set (it is never shown).
    pub fn has_auth_string(&self) -> bool {
        self.auth_string.is_some()
    }

    /// A problem with a setting of this configuration, naming where its value came from.
    pub(crate) fn setting_error(&self, setting: &'static str, problem: impl Into<String>) -> ConfigError {
        ConfigError::setting(setting, self.origin(setting), problem)
    }

    /// Checks what can only be checked once every setting is known.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if self.request_timeout.is_zero() {
            return Err(self.setting_error(
                sources::API_REQUEST_TIMEOUT.name,
                "is zero; a request timeout must be longer than zero, e.g. 60 s",
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::other(
                "the connect timeout is zero; it must be longer than zero, e.g. 10 s",
            ));
        }
        Ok(())
    }
}

/// Checks and normalizes an API URL: http(s), a host, no credentials, query or fragment, no
/// trailing slash. `from` names the setting and where the value came from (`None`: code).
pub(crate) fn parse_api_url(
    raw: &str,
    from: Option<(&Setting, &Origin)>,
) -> Result<reqwest::Url, ConfigError> {
    let fail = |problem: String| match from {
        Some((setting, origin)) => ConfigError::setting(setting.name, origin.clone(), problem),
        None => ConfigError::setting(sources::API_URL.name, Origin::Code, problem),
    };
    let example = "use a URL such as http://127.0.0.1:4200/api";
    let value = raw.trim();
    if value.is_empty() {
        return Err(fail(format!("is empty; {example}")));
    }
    let url = reqwest::Url::parse(value)
        .map_err(|e| fail(format!("{value:?} is not a URL; {example}")).caused_by(e))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(fail(format!(
            "{value:?} needs an http:// or https:// scheme and a host; {example}"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(fail(
            "carries credentials in the URL; remove them and set PREFECT_API_AUTH_STRING \
             (user:password) or PREFECT_API_KEY instead"
                .to_string(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(fail(format!(
            "{value:?} has a query or fragment; give the API's base URL only ({example})"
        )));
    }
    let trimmed = url.as_str().trim_end_matches('/').to_string();
    reqwest::Url::parse(&trimmed)
        .map_err(|e| fail("is not a URL without its trailing slash".into()).caused_by(e))
}

fn parse_seconds(setting: &Setting, value: &str, origin: Origin) -> Result<Duration, ConfigError> {
    match value.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 => Ok(Duration::try_from_secs_f64(s)
            .unwrap_or(MAX_TIMEOUT)
            .min(MAX_TIMEOUT)),
        _ => Err(ConfigError::setting(
            setting.name,
            origin,
            format!("is {value:?}; use a number of seconds above 0, such as 60"),
        )),
    }
}

/// Prefect's default for `PREFECT_FLOWS_HEARTBEAT_FREQUENCY`.
const DEFAULT_FLOW_HEARTBEAT: Duration = Duration::from_secs(180);
/// The shortest heartbeat interval taken (Prefect's own settings refuse less than 30 s; shorter
/// ones are taken here for tests of crash detection).
const MIN_FLOW_HEARTBEAT: Duration = Duration::from_secs(1);

/// A heartbeat interval in whole or decimal seconds; `none`, `null` or an empty value turn
/// heartbeats off (Prefect's `None`).
fn parse_heartbeat(setting: &Setting, value: &str, origin: Origin) -> Result<Option<Duration>, ConfigError> {
    let value = value.trim();
    if value.is_empty() || value.eq_ignore_ascii_case("none") || value.eq_ignore_ascii_case("null") {
        return Ok(None);
    }
    match value.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= MIN_FLOW_HEARTBEAT.as_secs_f64() => Ok(Some(
            Duration::try_from_secs_f64(s.min(86_400.0)).unwrap_or(DEFAULT_FLOW_HEARTBEAT),
        )),
        _ => Err(ConfigError::setting(
            setting.name,
            origin,
            format!(
                "is {value:?}; use a number of seconds such as 180 (Prefect takes 30 or more), or none to turn heartbeats off"
            ),
        )),
    }
}

fn parse_count(setting: &Setting, value: &str, origin: Origin) -> Result<u32, ConfigError> {
    value.trim().parse().map_err(|_| {
        ConfigError::setting(
            setting.name,
            origin,
            format!("is {value:?}; use a whole number of retries such as 5 (0 turns retries off)"),
        )
    })
}

/// Booleans as Prefect (pydantic) reads them.
fn parse_bool(setting: &Setting, value: &str, origin: Origin) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Ok(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Ok(false),
        _ => Err(ConfigError::setting(
            setting.name,
            origin,
            format!("is {value:?}; use true or false"),
        )),
    }
}

fn parse_status_codes(setting: &Setting, value: &str, origin: Origin) -> Result<Vec<u16>, ConfigError> {
    let list = value
        .trim()
        .trim_start_matches(['[', '{'])
        .trim_end_matches([']', '}']);
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s.trim_matches(['"', '\'']).parse::<u16>() {
            Ok(code) if (100..=599).contains(&code) => Ok(code),
            _ => Err(ConfigError::setting(
                setting.name,
                origin.clone(),
                format!("has {s:?}; list HTTP status codes separated by commas, such as 520,521"),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    /// A working directory and a PREFECT_HOME of their own, with these files.
    struct Place {
        home: tempfile::TempDir,
        dir: tempfile::TempDir,
    }

    impl Place {
        fn new(profiles: Option<&str>, files: &[(&str, &str)]) -> Place {
            let place = Place {
                home: tempfile::tempdir().unwrap(),
                dir: tempfile::tempdir().unwrap(),
            };
            if let Some(profiles) = profiles {
                std::fs::write(place.home.path().join("profiles.toml"), profiles).unwrap();
            }
            for (name, text) in files {
                std::fs::write(place.dir.path().join(name), text).unwrap();
            }
            place
        }

        fn config(&self, env: &[(&str, &str)]) -> Result<Config, crate::Error> {
            let mut env = env.to_vec();
            let home = self.home.path().to_str().unwrap();
            env.push(("PREFECT_HOME", home));
            Config::from_lookup_in(lookup(&env), self.dir.path())
        }
    }

    const PROFILE: &str = "active = 'local'\n[profiles.local]\nPREFECT_API_URL = 'http://profile:1/api'\nPREFECT_API_KEY = 'pk'\nPREFECT_API_REQUEST_TIMEOUT = 100000\n";

    #[test]
    fn environment_wins_over_profile() {
        let place = Place::new(Some(PROFILE), &[]);
        let config = place.config(&[("PREFECT_API_URL", "http://e:2/api/")]).unwrap();
        assert_eq!(config.api_url(), "http://e:2/api");
        assert_eq!(config.api_key.as_ref().unwrap().expose_secret(), "pk");
        assert_eq!(config.origin("PREFECT_API_URL"), Origin::Environment);
        assert!(matches!(config.origin("PREFECT_API_KEY"), Origin::Profile { .. }));
    }

    #[test]
    fn flow_heartbeats_default_to_prefects_180_s_and_read_the_legacy_name_too() {
        let place = Place::new(Some(PROFILE), &[]);
        let url = ("PREFECT_API_URL", "http://e:2/api");
        assert_eq!(
            place.config(&[url]).unwrap().flow_heartbeat(),
            Some(Duration::from_secs(180))
        );
        let legacy = place
            .config(&[url, ("PREFECT_RUNNER_HEARTBEAT_FREQUENCY", "30")])
            .unwrap();
        assert_eq!(legacy.flow_heartbeat(), Some(Duration::from_secs(30)));
        assert_eq!(
            legacy.origin("PREFECT_RUNNER_HEARTBEAT_FREQUENCY"),
            Origin::Environment
        );
        let both = [
            url,
            ("PREFECT_RUNNER_HEARTBEAT_FREQUENCY", "30"),
            ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "45"),
        ];
        assert_eq!(
            place.config(&both).unwrap().flow_heartbeat(),
            Some(Duration::from_secs(45))
        );
        let off = place
            .config(&[url, ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "None")])
            .unwrap();
        assert_eq!(off.flow_heartbeat(), None);
        let toml = Place::new(None, &[("prefect.toml", "[flows]\nheartbeat_frequency = 60\n")]);
        assert_eq!(
            toml.config(&[url]).unwrap().flow_heartbeat(),
            Some(Duration::from_secs(60))
        );
        let err = place
            .config(&[url, ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "often")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("PREFECT_FLOWS_HEARTBEAT_FREQUENCY") && err.contains("180"),
            "{err}"
        );
        let coded = Config::new("http://h:1/api").unwrap().with_flow_heartbeat(None);
        assert_eq!(coded.flow_heartbeat(), None);
    }

    #[test]
    fn a_timeout_above_a_day_is_accepted_as_prefect_accepts_it() {
        let place = Place::new(Some(PROFILE), &[]);
        let config = place.config(&[]).unwrap();
        assert_eq!(config.request_timeout(), Duration::from_secs(100_000));
        let huge = place.config(&[("PREFECT_API_REQUEST_TIMEOUT", "1e300")]).unwrap();
        assert_eq!(huge.request_timeout(), MAX_TIMEOUT);
    }

    #[test]
    fn an_empty_key_in_the_environment_overrides_the_profiles_key() {
        let place = Place::new(Some(PROFILE), &[]);
        let config = place.config(&[("PREFECT_API_KEY", "")]).unwrap();
        assert!(!config.has_api_key(), "Prefect then sends no key");
    }

    #[test]
    fn sources_rank_environment_dotenv_prefect_toml_pyproject_profile() {
        let files = [
            (".env", "PREFECT_API_URL=http://dotenv:1/api\n"),
            (
                "prefect.toml",
                "[api]\nurl = 'http://toml:1/api'\nkey = 'toml-key'\n[client]\nmax_retries = 2\n",
            ),
            (
                "pyproject.toml",
                "[tool.prefect.api]\nurl = 'http://pyproject:1/api'\nrequest_timeout = 7\n[tool.prefect.client]\nmax_retries = 9\nretry_extra_codes = [520]\n",
            ),
        ];
        let place = Place::new(Some(PROFILE), &files);
        let config = place.config(&[]).unwrap();
        assert_eq!(config.api_url(), "http://dotenv:1/api");
        assert_eq!(config.api_key.as_ref().unwrap().expose_secret(), "toml-key");
        assert_eq!(config.max_retries(), 2, "prefect.toml before pyproject.toml");
        assert_eq!(
            config.request_timeout(),
            Duration::from_secs(7),
            "pyproject.toml before the profile"
        );
        assert_eq!(config.retry_policy().extra_codes(), [520]);
        assert!(matches!(config.origin("PREFECT_API_URL"), Origin::DotEnv(_)));
        assert!(matches!(config.origin("PREFECT_API_KEY"), Origin::PrefectToml(_)));
        assert!(matches!(
            config.origin("PREFECT_API_REQUEST_TIMEOUT"),
            Origin::Pyproject(_)
        ));
        let config = place.config(&[("PREFECT_API_URL", "http://env:1/api")]).unwrap();
        assert_eq!(config.api_url(), "http://env:1/api");
    }

    #[test]
    fn profiles_path_may_come_from_prefect_toml() {
        let elsewhere = tempfile::tempdir().unwrap();
        let profiles = elsewhere.path().join("p.toml");
        std::fs::write(
            &profiles,
            "active = 'x'\n[profiles.x]\nPREFECT_API_URL = 'http://x:1/api'\n",
        )
        .unwrap();
        let toml = format!("profiles_path = '{}'\n", profiles.display());
        let place = Place::new(None, &[("prefect.toml", &toml)]);
        assert_eq!(place.config(&[]).unwrap().api_url(), "http://x:1/api");
    }

    #[test]
    fn active_profile_and_prefect_profile_override() {
        let place = Place::new(
            Some(
                "active = 'a'\n[profiles.a]\nPREFECT_API_URL = 'http://a:1/api'\n[profiles.b]\nPREFECT_API_URL = 'http://b:1/api'\nPREFECT_API_REQUEST_TIMEOUT = 7.5\nPREFECT_API_TLS_INSECURE_SKIP_VERIFY = true\n",
            ),
            &[],
        );
        assert_eq!(place.config(&[]).unwrap().api_url(), "http://a:1/api");
        let b = place.config(&[("PREFECT_PROFILE", "b")]).unwrap();
        assert_eq!(b.api_url(), "http://b:1/api");
        assert_eq!(b.request_timeout(), Duration::from_millis(7500));
        assert!(b.tls_insecure_skip_verify);
    }

    #[test]
    fn http2_is_off_unless_a_source_enables_it() {
        let place = Place::new(
            Some(
                "active = 'a'\n[profiles.a]\nPREFECT_API_URL = 'http://a:1/api'\nPREFECT_API_ENABLE_HTTP2 = 'true'\n",
            ),
            &[],
        );
        assert!(place.config(&[]).unwrap().enable_http2);
        assert!(
            !place
                .config(&[("PREFECT_API_ENABLE_HTTP2", "false")])
                .unwrap()
                .enable_http2
        );
        let err = place
            .config(&[("PREFECT_API_ENABLE_HTTP2", "maybe")])
            .unwrap_err();
        assert!(err.to_string().contains("PREFECT_API_ENABLE_HTTP2"), "{err}");
        let plain = Place::new(
            Some("active = 'a'\n[profiles.a]\nPREFECT_API_URL = 'http://a:1/api'\n"),
            &[],
        );
        assert!(!plain.config(&[]).unwrap().enable_http2);
    }

    #[test]
    fn missing_url_says_where_it_looked() {
        let place = Place::new(None, &[("prefect.toml", "[api]\nkey = 'k'\n")]);
        let err = place.config(&[]).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, crate::Error::Config(_)));
        assert!(
            text.contains("PREFECT_API_URL is not set")
                && text.contains("profiles.toml")
                && text.contains("prefect.toml"),
            "{text}"
        );
    }

    #[test]
    fn unknown_profile_lists_the_known_ones() {
        let place = Place::new(Some("active = 'a'\n[profiles.a]\n[profiles.b]\n"), &[]);
        let text = place
            .config(&[("PREFECT_PROFILE", "zzz")])
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("\"zzz\"") && text.contains("a, b") && text.contains("PREFECT_PROFILE"),
            "{text}"
        );
    }

    #[test]
    fn broken_settings_files_are_config_errors_with_their_cause() {
        let place = Place::new(Some("active = 'a'\n[profiles.a\n"), &[]);
        let err = place.config(&[]).unwrap_err();
        assert!(err.to_string().contains("is not valid"), "{err}");
        let crate::Error::Config(config) = &err else {
            panic!("{err:?}")
        };
        assert!(
            std::error::Error::source(config).is_some(),
            "the TOML error is the source"
        );
        let place = Place::new(None, &[("prefect.toml", "[api\n")]);
        let err = place
            .config(&[("PREFECT_API_URL", "http://h:1/api")])
            .unwrap_err();
        assert!(
            err.to_string().contains("prefect.toml") && err.to_string().contains("not valid TOML"),
            "{err}"
        );
    }

    #[test]
    fn builtin_ephemeral_profile_may_be_absent() {
        let place = Place::new(Some("active = 'ephemeral'\n"), &[]);
        let config = place.config(&[("PREFECT_API_URL", "http://x:1/api")]).unwrap();
        assert_eq!(config.api_url(), "http://x:1/api");
    }

    #[test]
    fn profiles_path_setting_is_honoured() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profiles.toml");
        std::fs::write(
            &path,
            "active = 'a'\n[profiles.a]\nPREFECT_API_URL = 'http://elsewhere:1/api'\n",
        )
        .unwrap();
        let config = Config::from_lookup_in(
            lookup(&[
                ("PREFECT_PROFILES_PATH", path.to_str().unwrap()),
                ("PREFECT_HOME", "/nonexistent"),
            ]),
            dir.path(),
        )
        .unwrap();
        assert_eq!(config.api_url(), "http://elsewhere:1/api");
    }

    #[test]
    fn bad_values_name_the_setting_and_its_origin() {
        let cases = [
            ("PREFECT_API_REQUEST_TIMEOUT", "-3", "seconds above 0"),
            ("PREFECT_API_REQUEST_TIMEOUT", "NaN", "seconds above 0"),
            ("PREFECT_API_REQUEST_TIMEOUT", "", "seconds above 0"),
            ("PREFECT_CLIENT_MAX_RETRIES", "many", "whole number"),
            ("PREFECT_CLIENT_RETRY_EXTRA_CODES", "520,abc", "status codes"),
            ("PREFECT_API_TLS_INSECURE_SKIP_VERIFY", "maybe", "true or false"),
            ("PREFECT_API_URL", "", "is empty"),
        ];
        let place = Place::new(None, &[]);
        for (name, value, hint) in cases {
            let mut env = vec![("PREFECT_API_URL", "http://x:1/api")];
            env.retain(|(n, _)| *n != name);
            env.push((name, value));
            let err = place.config(&env).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(name) && text.contains("from the environment") && text.contains(hint),
                "{text}"
            );
            let crate::Error::Config(config) = err else {
                panic!()
            };
            assert_eq!(config.setting_name(), Some(name));
            assert_eq!(config.origin(), Some(&Origin::Environment));
        }
        let place = Place::new(
            None,
            &[(
                "prefect.toml",
                "[api]\nurl = 'http://x:1/api'\nrequest_timeout = 'soon'\n",
            )],
        );
        let text = place.config(&[]).unwrap_err().to_string();
        assert!(
            text.contains("PREFECT_API_REQUEST_TIMEOUT") && text.contains("prefect.toml"),
            "{text}"
        );
    }

    #[test]
    fn retry_extra_codes_parse_lists() {
        let parse = |v| parse_status_codes(&sources::CLIENT_RETRY_EXTRA_CODES, v, Origin::Code);
        assert_eq!(parse("520, 521").unwrap(), [520, 521]);
        assert_eq!(parse("[520,\"521\"]").unwrap(), [520, 521]);
        assert_eq!(parse("{520}").unwrap(), [520]);
        assert!(parse("99").is_err());
    }

    #[test]
    fn api_urls_are_checked_with_a_fix_in_the_message() {
        for (bad, hint) in [
            ("localhost:4200/api", "scheme"),
            ("127.0.0.1:4200/api", "not a URL"),
            ("ftp://h/api", "scheme"),
            ("", "empty"),
            ("http://user:pw@h:1/api", "PREFECT_API_AUTH_STRING"),
            ("http://h:1/api?x=1", "query"),
            ("not a url", "not a URL"),
        ] {
            let err = parse_api_url(bad, None).unwrap_err();
            assert!(err.to_string().contains(hint), "{bad}: {err}");
            assert!(!err.to_string().contains("pw"), "{err}");
        }
        assert_eq!(
            parse_api_url(" https://api.prefect.cloud/api/accounts/a/workspaces/w/ ", None)
                .unwrap()
                .as_str(),
            "https://api.prefect.cloud/api/accounts/a/workspaces/w"
        );
        assert_eq!(
            parse_api_url("http://127.0.0.1:4200/api///", None)
                .unwrap()
                .as_str(),
            "http://127.0.0.1:4200/api"
        );
    }

    #[test]
    fn ssl_cert_file_falls_back_to_ssl_cert_file_as_in_prefect() {
        let place = Place::new(None, &[]);
        let config = place
            .config(&[
                ("PREFECT_API_URL", "http://x:1/api"),
                ("SSL_CERT_FILE", "/etc/ca.pem"),
            ])
            .unwrap();
        assert_eq!(config.ssl_cert_file(), Some(Path::new("/etc/ca.pem")));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let config = Config::new("http://h:1/api")
            .unwrap()
            .with_api_key("pnu_secret123")
            .with_auth_string("admin:hunter2");
        let text = format!("{config:?}");
        assert!(!text.contains("secret123") && !text.contains("hunter2"), "{text}");
        assert!(text.contains("[REDACTED]"));
    }
}
