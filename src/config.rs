//! Client settings, read the way Prefect's own client reads them: environment variables first,
//! then the active profile of `$PREFECT_HOME/profiles.toml`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

use crate::Error;

/// Prefect's default `PREFECT_API_REQUEST_TIMEOUT`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to wait for a TCP (and TLS) connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Prefect's default `PREFECT_CLIENT_MAX_RETRIES`.
pub const DEFAULT_MAX_RETRIES: u32 = 5;

/// The settings a [`Client`](crate::Client) is built from.
///
/// Build one with [`Config::new`] and the `with_*` methods, or read the user's Prefect settings
/// with [`Config::from_env`]. `Debug` never shows the API key or auth string.
#[derive(Clone)]
pub struct Config {
    pub(crate) api_url: reqwest::Url,
    pub(crate) api_key: Option<SecretString>,
    pub(crate) auth_string: Option<SecretString>,
    pub(crate) request_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) max_retries: u32,
    pub(crate) retry_extra_codes: Vec<u16>,
    pub(crate) ssl_cert_file: Option<PathBuf>,
    pub(crate) tls_insecure_skip_verify: bool,
    pub(crate) csrf_support: bool,
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
            .field("max_retries", &self.max_retries)
            .field("retry_extra_codes", &self.retry_extra_codes)
            .field("ssl_cert_file", &self.ssl_cert_file)
            .field("tls_insecure_skip_verify", &self.tls_insecure_skip_verify)
            .field("csrf_support", &self.csrf_support)
            .finish()
    }
}

impl Config {
    /// Settings for the API at `api_url` (`http://127.0.0.1:4200/api`, or Prefect Cloud's
    /// `https://api.prefect.cloud/api/accounts/{account}/workspaces/{workspace}`), with
    /// Prefect's defaults for everything else.
    pub fn new(api_url: &str) -> Result<Config, Error> {
        Ok(Config {
            api_url: parse_api_url(api_url, "the API URL")?,
            api_key: None,
            auth_string: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            retry_extra_codes: Vec::new(),
            ssl_cert_file: None,
            tls_insecure_skip_verify: false,
            csrf_support: true,
        })
    }

    /// Reads the user's Prefect settings: each of `PREFECT_API_URL`, `PREFECT_API_KEY`,
    /// `PREFECT_API_AUTH_STRING`, `PREFECT_API_REQUEST_TIMEOUT`, `PREFECT_CLIENT_MAX_RETRIES`,
    /// `PREFECT_CLIENT_RETRY_EXTRA_CODES`, `PREFECT_API_SSL_CERT_FILE` and
    /// `PREFECT_API_TLS_INSECURE_SKIP_VERIFY` and `PREFECT_CLIENT_CSRF_SUPPORT_ENABLED` from the environment, or where unset from the
    /// active profile of `$PREFECT_HOME/profiles.toml` (`PREFECT_PROFILE` picks another profile,
    /// `PREFECT_PROFILES_PATH` another file).
    pub fn from_env() -> Result<Config, Error> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Config::from_env`], reading variables through `env` instead of the process
    /// environment.
    pub fn from_lookup(env: impl Fn(&str) -> Option<String>) -> Result<Config, Error> {
        let settings = Settings::load(&env)?;
        let Some((url, origin)) = settings.get("PREFECT_API_URL") else {
            return Err(Error::Config(format!(
                "PREFECT_API_URL is not set{}; set it to your server's API, e.g. \
                 http://127.0.0.1:4200/api, or for Prefect Cloud \
                 https://api.prefect.cloud/api/accounts/<account>/workspaces/<workspace>",
                settings.searched()
            )));
        };
        let mut config = Config::new_from(&url, &origin)?;
        if let Some((key, _)) = settings.get("PREFECT_API_KEY") {
            config.api_key = Some(key.into());
        }
        if let Some((auth, _)) = settings.get("PREFECT_API_AUTH_STRING") {
            config.auth_string = Some(auth.into());
        }
        if let Some((value, origin)) = settings.get("PREFECT_API_REQUEST_TIMEOUT") {
            config.request_timeout = parse_seconds(&value, &origin)?;
        }
        if let Some((value, origin)) = settings.get("PREFECT_CLIENT_MAX_RETRIES") {
            config.max_retries = value.trim().parse().map_err(|_| {
                Error::Config(format!(
                    "{origin} is {value:?}; use a whole number of retries such as 5"
                ))
            })?;
        }
        if let Some((value, origin)) = settings.get("PREFECT_CLIENT_RETRY_EXTRA_CODES") {
            config.retry_extra_codes = parse_status_codes(&value, &origin)?;
        }
        if let Some((value, _)) = settings.get("PREFECT_API_SSL_CERT_FILE") {
            config.ssl_cert_file = Some(PathBuf::from(value));
        }
        if let Some((value, origin)) = settings.get("PREFECT_API_TLS_INSECURE_SKIP_VERIFY") {
            config.tls_insecure_skip_verify = parse_bool(&value, &origin)?;
        }
        if let Some((value, origin)) = settings.get("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED") {
            config.csrf_support = parse_bool(&value, &origin)?;
        }
        Ok(config)
    }

    fn new_from(url: &str, origin: &str) -> Result<Config, Error> {
        let mut config = Config::new("http://placeholder")?;
        config.api_url = parse_api_url(url, origin)?;
        Ok(config)
    }

    /// Sends `Authorization: Bearer <key>` (Prefect Cloud API keys).
    pub fn with_api_key(mut self, key: impl Into<String>) -> Config {
        self.api_key = Some(SecretString::from(key.into()));
        self
    }

    /// Sends `Authorization: Basic <base64(auth_string)>` (a self-hosted server with
    /// `PREFECT_SERVER_API_AUTH_STRING`, given as `user:password`).
    pub fn with_auth_string(mut self, auth_string: impl Into<String>) -> Config {
        self.auth_string = Some(SecretString::from(auth_string.into()));
        self
    }

    /// The longest a whole request (connect, send, read the body) may take.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Config {
        self.request_timeout = timeout;
        self
    }

    /// The longest connecting may take.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Config {
        self.connect_timeout = timeout;
        self
    }

    /// How many times a failed request is retried (429, 502, 503, 504, connection errors).
    pub fn with_max_retries(mut self, retries: u32) -> Config {
        self.max_retries = retries;
        self
    }

    /// Status codes retried besides 429, 502, 503 and 504 (`PREFECT_CLIENT_RETRY_EXTRA_CODES`).
    pub fn with_retry_extra_codes(mut self, codes: impl IntoIterator<Item = u16>) -> Config {
        self.retry_extra_codes = codes.into_iter().collect();
        self
    }

    /// Trusts the CA certificates of this PEM file too (`PREFECT_API_SSL_CERT_FILE`), for a
    /// server whose certificate a private CA signed.
    pub fn with_ssl_cert_file(mut self, path: impl Into<PathBuf>) -> Config {
        self.ssl_cert_file = Some(path.into());
        self
    }

    /// Whether to fetch and send CSRF tokens to servers that want them
    /// (`PREFECT_CLIENT_CSRF_SUPPORT_ENABLED`, default true).
    pub fn with_csrf_support(mut self, enabled: bool) -> Config {
        self.csrf_support = enabled;
        self
    }

    /// Skips TLS certificate checks (`PREFECT_API_TLS_INSECURE_SKIP_VERIFY`): for tests only;
    /// a warning is logged when the client is built.
    pub fn with_tls_insecure_skip_verify(mut self, skip: bool) -> Config {
        self.tls_insecure_skip_verify = skip;
        self
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

    /// How many times a failed request is retried.
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// Whether an API key is set (the key itself is never shown).
    pub fn has_api_key(&self) -> bool {
        self.api_key.is_some()
    }

    /// Whether an auth string is set (it is never shown).
    pub fn has_auth_string(&self) -> bool {
        self.auth_string.is_some()
    }
}

/// Checks and normalizes an API URL: http(s), a host, no credentials, query or fragment, no
/// trailing slash. `origin` names where the value came from, for the message.
pub(crate) fn parse_api_url(raw: &str, origin: &str) -> Result<reqwest::Url, Error> {
    let example = "use a URL such as http://127.0.0.1:4200/api";
    let value = raw.trim();
    if value.is_empty() {
        return Err(Error::Config(format!("{origin} is empty; {example}")));
    }
    let url = reqwest::Url::parse(value)
        .map_err(|e| Error::Config(format!("{origin} {value:?} is not a URL ({e}); {example}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(Error::Config(format!(
            "{origin} {value:?} needs an http:// or https:// scheme and a host; {example}"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::Config(format!(
            "{origin} carries credentials in the URL; remove them and set PREFECT_API_AUTH_STRING \
             (user:password) or PREFECT_API_KEY instead"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::Config(format!(
            "{origin} {value:?} has a query or fragment; give the API's base URL only ({example})"
        )));
    }
    let trimmed = url.as_str().trim_end_matches('/').to_string();
    reqwest::Url::parse(&trimmed).map_err(|e| Error::Config(format!("{origin}: {e}")))
}

fn parse_seconds(value: &str, origin: &str) -> Result<Duration, Error> {
    match value.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(Error::Config(format!(
            "{origin} is {value:?}; use a number of seconds above 0, such as 60"
        ))),
    }
}

fn parse_bool(value: &str, origin: &str) -> Result<bool, Error> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(Error::Config(format!("{origin} is {value:?}; use true or false"))),
    }
}

fn parse_status_codes(value: &str, origin: &str) -> Result<Vec<u16>, Error> {
    let list = value.trim().trim_start_matches('[').trim_end_matches(']');
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s.trim_matches('"').parse::<u16>() {
            Ok(code) if (100..=599).contains(&code) => Ok(code),
            _ => Err(Error::Config(format!(
                "{origin} has {s:?}; list HTTP status codes separated by commas, such as 520,521"
            ))),
        })
        .collect()
}

/// Values from the environment and the active profile, with where each came from.
struct Settings {
    env: BTreeMap<String, String>,
    profile: BTreeMap<String, String>,
    /// `profile 'name' in /path/profiles.toml`, when a profile was read.
    profile_origin: Option<String>,
    profiles_path: PathBuf,
}

/// The settings this client reads.
const SETTING_NAMES: [&str; 9] = [
    "PREFECT_API_URL",
    "PREFECT_API_KEY",
    "PREFECT_API_AUTH_STRING",
    "PREFECT_API_REQUEST_TIMEOUT",
    "PREFECT_CLIENT_MAX_RETRIES",
    "PREFECT_CLIENT_RETRY_EXTRA_CODES",
    "PREFECT_API_SSL_CERT_FILE",
    "PREFECT_API_TLS_INSECURE_SKIP_VERIFY",
    "PREFECT_CLIENT_CSRF_SUPPORT_ENABLED",
];

impl Settings {
    fn load(env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, Error> {
        let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let env_values = SETTING_NAMES
            .iter()
            .filter_map(|name| set(name).map(|v| (name.to_string(), v)))
            .collect();
        let home = match set("PREFECT_HOME") {
            Some(home) => PathBuf::from(expand_home(&home)),
            None => dirs::home_dir().unwrap_or_default().join(".prefect"),
        };
        let profiles_path = match set("PREFECT_PROFILES_PATH") {
            Some(path) => PathBuf::from(expand_home(&path)),
            None => profiles_path(&home),
        };
        let mut settings = Settings {
            env: env_values,
            profile: BTreeMap::new(),
            profile_origin: None,
            profiles_path,
        };
        settings.read_profile(set("PREFECT_PROFILE"))?;
        Ok(settings)
    }

    /// Reads the active (or `requested`) profile's settings from the profiles file.
    fn read_profile(&mut self, requested: Option<String>) -> Result<(), Error> {
        let path = self.profiles_path.clone();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return match requested {
                    Some(name) => Err(Error::Config(format!(
                        "PREFECT_PROFILE is {name:?} but {} does not exist; unset PREFECT_PROFILE \
                         or create the profile with `prefect profile create {name}`",
                        path.display()
                    ))),
                    None => Ok(()),
                };
            }
            Err(e) => {
                return Err(Error::Config(format!(
                    "cannot read Prefect profiles file {}: {e}; fix its permissions or set \
                     PREFECT_PROFILES_PATH",
                    path.display()
                )));
            }
        };
        let file: ProfilesFile = toml::from_str(&text).map_err(|e| {
            Error::Config(format!(
                "Prefect profiles file {} is not valid: {}; fix it or point PREFECT_PROFILES_PATH at \
                 another file",
                path.display(),
                e.message()
            ))
        })?;
        let from_env = requested.is_some();
        let Some(name) = requested.or(file.active) else {
            return Ok(());
        };
        let Some(values) = file.profiles.get(&name) else {
            if !from_env && name == "ephemeral" {
                // Prefect's built-in default profile need not be written in the file.
                return Ok(());
            }
            let known: Vec<&str> = file.profiles.keys().map(String::as_str).collect();
            return Err(Error::Config(format!(
                "profile {name:?} ({}) is not in {}; profiles there: {}; choose one with \
                 PREFECT_PROFILE or `prefect profile use`",
                if from_env {
                    "from PREFECT_PROFILE"
                } else {
                    "the active profile"
                },
                path.display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        };
        for (key, value) in values {
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => other.to_string(),
            };
            if !text.trim().is_empty() {
                self.profile.insert(key.clone(), text);
            }
        }
        self.profile_origin = Some(format!("profile {name:?} in {}", path.display()));
        Ok(())
    }

    /// A setting's value and a description of where it came from.
    fn get(&self, name: &str) -> Option<(String, String)> {
        if let Some(v) = self.env.get(name) {
            return Some((v.clone(), format!("{name} (from the environment)")));
        }
        let origin = self.profile_origin.as_deref()?;
        self.profile
            .get(name)
            .map(|v| (v.clone(), format!("{name} (from {origin})")))
    }

    fn searched(&self) -> String {
        match &self.profile_origin {
            Some(origin) => format!(" in the environment nor in {origin}"),
            None => format!(
                " in the environment and no active profile sets it ({} has none)",
                self.profiles_path.display()
            ),
        }
    }
}

fn expand_home(path: &str) -> String {
    match (path.strip_prefix("~/"), dirs::home_dir()) {
        (Some(rest), Some(home)) => home.join(rest).display().to_string(),
        _ => path.to_string(),
    }
}

/// `profiles.toml` as Prefect writes it.
#[derive(serde::Deserialize)]
struct ProfilesFile {
    active: Option<String>,
    #[serde(default)]
    profiles: BTreeMap<String, BTreeMap<String, toml::Value>>,
}

/// Where Prefect keeps its profiles for the given `PREFECT_HOME`.
fn profiles_path(prefect_home: &Path) -> PathBuf {
    prefect_home.join("profiles.toml")
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

    fn home_with(profiles: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(profiles_path(dir.path()), profiles).unwrap();
        dir
    }

    #[test]
    fn environment_wins_over_profile() {
        let home = home_with(
            "active = 'local'\n[profiles.local]\nPREFECT_API_URL = 'http://p:1/api'\nPREFECT_API_KEY = 'pk'\n",
        );
        let h = home.path().to_str().unwrap();
        let config = Config::from_lookup(lookup(&[
            ("PREFECT_HOME", h),
            ("PREFECT_API_URL", "http://e:2/api/"),
        ]))
        .unwrap();
        assert_eq!(config.api_url(), "http://e:2/api");
        assert_eq!(config.api_key.as_ref().unwrap().expose_secret(), "pk");
    }

    #[test]
    fn active_profile_and_prefect_profile_override() {
        let home = home_with(
            "active = 'a'\n[profiles.a]\nPREFECT_API_URL = 'http://a:1/api'\n[profiles.b]\nPREFECT_API_URL = 'http://b:1/api'\nPREFECT_API_REQUEST_TIMEOUT = 7.5\nPREFECT_API_TLS_INSECURE_SKIP_VERIFY = true\n",
        );
        let h = home.path().to_str().unwrap();
        assert_eq!(
            Config::from_lookup(lookup(&[("PREFECT_HOME", h)]))
                .unwrap()
                .api_url(),
            "http://a:1/api"
        );
        let b = Config::from_lookup(lookup(&[("PREFECT_HOME", h), ("PREFECT_PROFILE", "b")])).unwrap();
        assert_eq!(b.api_url(), "http://b:1/api");
        assert_eq!(b.request_timeout(), Duration::from_millis(7500));
        assert!(b.tls_insecure_skip_verify);
    }

    #[test]
    fn missing_url_says_where_it_looked() {
        let home = tempfile::tempdir().unwrap();
        let err =
            Config::from_lookup(lookup(&[("PREFECT_HOME", home.path().to_str().unwrap())])).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Config(_)));
        assert!(
            text.contains("PREFECT_API_URL is not set") && text.contains("profiles.toml"),
            "{text}"
        );
    }

    #[test]
    fn unknown_profile_lists_the_known_ones() {
        let home = home_with("active = 'a'\n[profiles.a]\n[profiles.b]\n");
        let h = home.path().to_str().unwrap();
        let text = Config::from_lookup(lookup(&[("PREFECT_HOME", h), ("PREFECT_PROFILE", "zzz")]))
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("\"zzz\"") && text.contains("a, b") && text.contains("PREFECT_PROFILE"),
            "{text}"
        );
    }

    #[test]
    fn broken_profiles_file_is_a_config_error() {
        let home = home_with("active = 'a'\n[profiles.a\n");
        let err =
            Config::from_lookup(lookup(&[("PREFECT_HOME", home.path().to_str().unwrap())])).unwrap_err();
        assert!(err.to_string().contains("is not valid"), "{err}");
    }

    #[test]
    fn builtin_ephemeral_profile_may_be_absent() {
        let home = home_with("active = 'ephemeral'\n");
        let h = home.path().to_str().unwrap();
        let config = Config::from_lookup(lookup(&[
            ("PREFECT_HOME", h),
            ("PREFECT_API_URL", "http://x:1/api"),
        ]))
        .unwrap();
        assert_eq!(config.api_url(), "http://x:1/api");
    }

    #[test]
    fn profiles_path_setting_is_honoured() {
        let dir = home_with("active = 'a'\n[profiles.a]\nPREFECT_API_URL = 'http://elsewhere:1/api'\n");
        let path = profiles_path(dir.path());
        let config = Config::from_lookup(lookup(&[
            ("PREFECT_PROFILES_PATH", path.to_str().unwrap()),
            ("PREFECT_HOME", "/nonexistent"),
        ]))
        .unwrap();
        assert_eq!(config.api_url(), "http://elsewhere:1/api");
    }

    #[test]
    fn bad_values_name_the_setting_and_its_origin() {
        let cases = [
            ("PREFECT_API_REQUEST_TIMEOUT", "-3", "seconds above 0"),
            ("PREFECT_API_REQUEST_TIMEOUT", "NaN", "seconds above 0"),
            ("PREFECT_CLIENT_MAX_RETRIES", "many", "whole number"),
            ("PREFECT_CLIENT_RETRY_EXTRA_CODES", "520,abc", "status codes"),
            ("PREFECT_API_TLS_INSECURE_SKIP_VERIFY", "maybe", "true or false"),
        ];
        let home = tempfile::tempdir().unwrap();
        for (name, value, hint) in cases {
            let err = Config::from_lookup(lookup(&[
                ("PREFECT_HOME", home.path().to_str().unwrap()),
                ("PREFECT_API_URL", "http://x:1/api"),
                (name, value),
            ]))
            .unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(name) && text.contains("from the environment") && text.contains(hint),
                "{text}"
            );
        }
    }

    #[test]
    fn retry_extra_codes_parse_lists() {
        assert_eq!(parse_status_codes("520, 521", "X").unwrap(), [520, 521]);
        assert_eq!(parse_status_codes("[520,\"521\"]", "X").unwrap(), [520, 521]);
        assert!(parse_status_codes("99", "X").is_err());
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
            let err = parse_api_url(bad, "PREFECT_API_URL").unwrap_err();
            assert!(err.to_string().contains(hint), "{bad}: {err}");
            assert!(!err.to_string().contains("pw"), "{err}");
        }
        assert_eq!(
            parse_api_url(" https://api.prefect.cloud/api/accounts/a/workspaces/w/ ", "x")
                .unwrap()
                .as_str(),
            "https://api.prefect.cloud/api/accounts/a/workspaces/w"
        );
        assert_eq!(
            parse_api_url("http://127.0.0.1:4200/api///", "x")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:4200/api"
        );
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
