//! Where Prefect's settings come from, read in Prefect's own order (`prefect/settings/base.py`,
//! `sources.py` of Prefect 3): the first source that sets a value wins.
//!
//! 1. the environment (a variable set to the empty string is set: `PREFECT_API_KEY=` means no
//!    key, whatever the profile says);
//! 2. `.env` in the working directory;
//! 3. `prefect.toml` in the working directory (`[api] url = …`, `[client] max_retries = …`);
//! 4. `[tool.prefect]` of `pyproject.toml` in the working directory (`[tool.prefect.api] url = …`);
//! 5. the active profile of the profiles file (`PREFECT_PROFILE`, else the file's `active`).
//!
//! The profiles file is `PREFECT_PROFILES_PATH` (environment, `.env`, `profiles_path` of
//! `prefect.toml` or of `[tool.prefect]`), else `$PREFECT_HOME/profiles.toml`, else
//! `~/.prefect/profiles.toml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, Origin};

/// A setting this client reads: its name (an environment variable and a profile key) and its
/// place in `prefect.toml`.
pub(crate) struct Setting {
    pub(crate) name: &'static str,
    toml_path: &'static [&'static str],
}

macro_rules! settings {
    ($($name:ident = $env:literal at [$($key:literal),+];)*) => {
        $(pub(crate) const $name: Setting = Setting { name: $env, toml_path: &[$($key),+] };)*
        /// Every setting this client reads.
        const ALL: &[Setting] = &[$($name),*];
    };
}

settings! {
    API_URL = "PREFECT_API_URL" at ["api", "url"];
    API_KEY = "PREFECT_API_KEY" at ["api", "key"];
    API_AUTH_STRING = "PREFECT_API_AUTH_STRING" at ["api", "auth_string"];
    API_REQUEST_TIMEOUT = "PREFECT_API_REQUEST_TIMEOUT" at ["api", "request_timeout"];
    API_SSL_CERT_FILE = "PREFECT_API_SSL_CERT_FILE" at ["api", "ssl_cert_file"];
    API_TLS_INSECURE_SKIP_VERIFY = "PREFECT_API_TLS_INSECURE_SKIP_VERIFY" at ["api", "tls_insecure_skip_verify"];
    API_ENABLE_HTTP2 = "PREFECT_API_ENABLE_HTTP2" at ["api", "enable_http2"];
    CLIENT_MAX_RETRIES = "PREFECT_CLIENT_MAX_RETRIES" at ["client", "max_retries"];
    CLIENT_RETRY_EXTRA_CODES = "PREFECT_CLIENT_RETRY_EXTRA_CODES" at ["client", "retry_extra_codes"];
    CLIENT_CSRF_SUPPORT_ENABLED = "PREFECT_CLIENT_CSRF_SUPPORT_ENABLED" at ["client", "csrf_support_enabled"];
    FLOWS_HEARTBEAT_FREQUENCY = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY" at ["flows", "heartbeat_frequency"];
    RUNNER_HEARTBEAT_FREQUENCY = "PREFECT_RUNNER_HEARTBEAT_FREQUENCY" at ["runner", "heartbeat_frequency"];
}

/// A `.env` file read: where, and its values.
type DotEnv = (PathBuf, BTreeMap<String, String>);
/// A TOML file read: where, and its table (for `pyproject.toml`, its `[tool.prefect]`).
type TomlFile = (PathBuf, toml::Table);
/// The profile read: its name, the profiles file, and its values.
type Profile = (String, PathBuf, toml::Table);

/// The values of every source, and where each came from.
pub(crate) struct Sources {
    env: BTreeMap<&'static str, String>,
    dotenv: Option<DotEnv>,
    prefect_toml: Option<TomlFile>,
    pyproject: Option<TomlFile>,
    profile: Option<Profile>,
    profiles_path: PathBuf,
}

impl Sources {
    /// Reads every source: the environment through `env`, the files of directory `dir`.
    pub(crate) fn load(env: &dyn Fn(&str) -> Option<String>, dir: &Path) -> Result<Sources, ConfigError> {
        let env_values = ALL
            .iter()
            .filter_map(|s| env(s.name).map(|v| (s.name, v)))
            .collect();
        let dotenv = read_dotenv(&dir.join(".env"))?;
        let prefect_toml = read_toml(&dir.join("prefect.toml"))?;
        let pyproject = read_toml(&dir.join("pyproject.toml"))?.map(|(path, table)| {
            let prefect = table
                .get("tool")
                .and_then(|t| t.get("prefect"))
                .and_then(toml::Value::as_table)
                .cloned()
                .unwrap_or_default();
            (path, prefect)
        });
        let profiles_path = profiles_path(env, dotenv.as_ref(), prefect_toml.as_ref(), pyproject.as_ref());
        let mut sources = Sources {
            env: env_values,
            dotenv,
            prefect_toml,
            pyproject,
            profile: None,
            profiles_path,
        };
        sources.profile = read_profile(&sources.profiles_path, env("PREFECT_PROFILE"))?;
        Ok(sources)
    }

    /// A setting's value as text (TOML numbers, booleans and lists written out) and where it
    /// came from, from the first source that sets it.
    pub(crate) fn get(&self, setting: &Setting) -> Option<(String, Origin)> {
        if let Some(value) = self.env.get(setting.name) {
            return Some((value.clone(), Origin::Environment));
        }
        if let Some((path, values)) = &self.dotenv
            && let Some(value) = values.get(setting.name)
        {
            return Some((value.clone(), Origin::DotEnv(path.clone())));
        }
        if let Some((path, table)) = &self.prefect_toml
            && let Some(value) = nested(table, setting.toml_path)
        {
            return Some((value, Origin::PrefectToml(path.clone())));
        }
        if let Some((path, table)) = &self.pyproject
            && let Some(value) = nested(table, setting.toml_path)
        {
            return Some((value, Origin::Pyproject(path.clone())));
        }
        let (name, path, values) = self.profile.as_ref()?;
        let value = values.get(setting.name).map(toml_text)?;
        Some((
            value,
            Origin::Profile {
                name: name.clone(),
                path: path.clone(),
            },
        ))
    }

    /// Where a missing setting was looked for, for its message.
    pub(crate) fn searched(&self) -> String {
        let mut places = vec!["the environment".to_string()];
        if let Some((path, _)) = &self.dotenv {
            places.push(path.display().to_string());
        }
        if let Some((path, _)) = &self.prefect_toml {
            places.push(path.display().to_string());
        }
        if let Some((path, _)) = &self.pyproject {
            places.push(format!("[tool.prefect] of {}", path.display()));
        }
        match &self.profile {
            Some((name, path, _)) => places.push(format!("profile {name:?} in {}", path.display())),
            None => places.push(format!(
                "an active profile ({} has none)",
                self.profiles_path.display()
            )),
        }
        places.join(", ")
    }
}

/// The value at `path` of a TOML table, as text.
fn nested(table: &toml::Table, path: &[&str]) -> Option<String> {
    let (last, parents) = path.split_last()?;
    let mut table = table;
    for key in parents {
        table = table.get(*key)?.as_table()?;
    }
    table.get(*last).map(toml_text)
}

/// A TOML value as the text an environment variable would hold: strings as they are, lists
/// joined by commas.
fn toml_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => items.iter().map(toml_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn read_file(path: &Path) -> Result<Option<String>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if path.is_dir() => Err(ConfigError::other(format!(
            "{} is a directory, not a settings file; remove or rename it",
            path.display()
        ))
        .caused_by(e)),
        Err(e) => Err(ConfigError::other(format!(
            "cannot read the Prefect settings file {}; fix its permissions",
            path.display()
        ))
        .caused_by(e)),
    }
}

fn read_toml(path: &Path) -> Result<Option<TomlFile>, ConfigError> {
    let Some(text) = read_file(path)? else {
        return Ok(None);
    };
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        ConfigError::other(format!(
            "the Prefect settings file {} is not valid TOML; fix it (Prefect's own client refuses it too)",
            path.display()
        ))
        .caused_by(e)
    })?;
    Ok(Some((absolute(path), table)))
}

fn read_dotenv(path: &Path) -> Result<Option<DotEnv>, ConfigError> {
    let Some(text) = read_file(path)? else {
        return Ok(None);
    };
    Ok(Some((absolute(path), parse_dotenv(&text))))
}

/// `KEY=value` lines as `python-dotenv` reads them: `export ` prefixes, `#` comments, single
/// or double quotes (with `\n`, `\"` and `\\` in double quotes), inline comments after a
/// space in unquoted values.
pub(crate) fn parse_dotenv(text: &str) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        let value = value.trim();
        let value = if let Some(rest) = value.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = rest.chars();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('n') => out.push('\n'),
                        Some('t') => out.push('\t'),
                        Some(other) => out.push(other),
                        None => {}
                    },
                    c => out.push(c),
                }
            }
            out
        } else if let Some(rest) = value.strip_prefix('\'') {
            rest.split('\'').next().unwrap_or_default().to_string()
        } else {
            match value.find(" #") {
                Some(cut) => value[..cut].trim_end().to_string(),
                None => value.to_string(),
            }
        };
        values.insert(key.to_string(), value);
    }
    values
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The profiles file, found as Prefect finds it.
fn profiles_path(
    env: &dyn Fn(&str) -> Option<String>,
    dotenv: Option<&DotEnv>,
    prefect_toml: Option<&TomlFile>,
    pyproject: Option<&TomlFile>,
) -> PathBuf {
    let nonempty = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let from_toml =
        |source: Option<&TomlFile>| source.and_then(|(_, table)| nested(table, &["profiles_path"]));
    let chosen = nonempty(env("PREFECT_PROFILES_PATH"))
        .or_else(|| nonempty(dotenv.and_then(|(_, values)| values.get("PREFECT_PROFILES_PATH").cloned())))
        .or_else(|| nonempty(from_toml(prefect_toml)))
        .or_else(|| nonempty(from_toml(pyproject)));
    if let Some(path) = chosen {
        return PathBuf::from(expand_home(&path));
    }
    let home = match nonempty(env("PREFECT_HOME")) {
        Some(home) => PathBuf::from(expand_home(&home)),
        None => dirs::home_dir().unwrap_or_default().join(".prefect"),
    };
    home.join("profiles.toml")
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
    profiles: BTreeMap<String, toml::Table>,
}

/// The active (or `requested`) profile's settings, with its name and file.
fn read_profile(path: &Path, requested: Option<String>) -> Result<Option<Profile>, ConfigError> {
    let requested = requested.filter(|name| !name.trim().is_empty());
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return match requested {
                Some(name) => Err(ConfigError::setting(
                    "PREFECT_PROFILE",
                    Origin::Environment,
                    format!(
                        "is {name:?} but {} does not exist; unset PREFECT_PROFILE or create the profile \
                         with `prefect profile create {name}`",
                        path.display()
                    ),
                )),
                None => Ok(None),
            };
        }
        Err(e) => {
            return Err(ConfigError::other(format!(
                "cannot read the Prefect profiles file {}; fix its permissions or set PREFECT_PROFILES_PATH",
                path.display()
            ))
            .caused_by(e));
        }
    };
    let file: ProfilesFile = toml::from_str(&text).map_err(|e| {
        ConfigError::other(format!(
            "the Prefect profiles file {} is not valid; fix it or point PREFECT_PROFILES_PATH at another file",
            path.display()
        ))
        .caused_by(e)
    })?;
    let from_env = requested.is_some();
    let Some(name) = requested.or(file.active) else {
        return Ok(None);
    };
    let Some(values) = file.profiles.get(&name) else {
        if !from_env && name == "ephemeral" {
            // Prefect's built-in default profile need not be written in the file.
            return Ok(None);
        }
        let known: Vec<&str> = file.profiles.keys().map(String::as_str).collect();
        let known = if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        };
        let fix =
            format!("profiles there: {known}; choose one with PREFECT_PROFILE or `prefect profile use`");
        return Err(if from_env {
            ConfigError::setting(
                "PREFECT_PROFILE",
                Origin::Environment,
                format!("is {name:?}, which is not a profile of {}; {fix}", path.display()),
            )
        } else {
            ConfigError::other(format!(
                "the active profile of {} is {name:?}, which the file does not define; {fix}",
                path.display()
            ))
        });
    };
    Ok(Some((name, path.to_path_buf(), values.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_lines_are_read_as_python_dotenv_reads_them() {
        let values = parse_dotenv(
            "# comment\nexport PREFECT_API_URL=http://h:1/api\nPREFECT_API_KEY=\nA = 'single # kept'\nB=\"dq \\\"x\\\"\\n\" # c\nC=plain # cut\nnot a pair\n",
        );
        assert_eq!(values["PREFECT_API_URL"], "http://h:1/api");
        assert_eq!(values["PREFECT_API_KEY"], "");
        assert_eq!(values["A"], "single # kept");
        assert_eq!(values["B"], "dq \"x\"\n");
        assert_eq!(values["C"], "plain");
        assert!(!values.contains_key("not a pair"));
    }

    #[test]
    fn nested_toml_values_are_text() {
        let table: toml::Table = toml::from_str(
            "[api]\nurl = 'u'\nrequest_timeout = 90\n[client]\nretry_extra_codes = [520, 521]\n",
        )
        .unwrap();
        assert_eq!(nested(&table, &["api", "url"]).as_deref(), Some("u"));
        assert_eq!(nested(&table, &["api", "request_timeout"]).as_deref(), Some("90"));
        assert_eq!(
            nested(&table, &["client", "retry_extra_codes"]).as_deref(),
            Some("520,521")
        );
        assert_eq!(nested(&table, &["api", "key"]), None);
    }
}
