//! [`ConfigError`]: a setting that is missing or wrong, which setting, where its value came
//! from, and the cause.

use std::fmt;
use std::path::PathBuf;

/// Where a setting's value came from, in Prefect's order of sources (the first that sets a
/// value wins): the environment, `.env` in the working directory, `prefect.toml` in the
/// working directory, `[tool.prefect]` of `pyproject.toml` there, the active profile.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// The process environment.
    Environment,
    /// A `.env` file (the working directory's).
    DotEnv(PathBuf),
    /// A `prefect.toml` file (the working directory's).
    PrefectToml(PathBuf),
    /// The `[tool.prefect]` table of a `pyproject.toml` file (the working directory's).
    Pyproject(PathBuf),
    /// A profile of Prefect's profiles file.
    Profile {
        /// The profile's name.
        name: String,
        /// The profiles file.
        path: PathBuf,
    },
    /// Code: [`Config`](crate::Config)'s `with_*` methods or the
    /// [`ClientBuilder`](crate::ClientBuilder).
    Code,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Environment => write!(f, "the environment"),
            Origin::DotEnv(path) | Origin::PrefectToml(path) => write!(f, "{}", path.display()),
            Origin::Pyproject(path) => write!(f, "[tool.prefect] of {}", path.display()),
            Origin::Profile { name, path } => write!(f, "profile {name:?} in {}", path.display()),
            Origin::Code => write!(f, "the code building the client"),
        }
    }
}

/// A client setting that is missing or wrong; nothing was sent. Says which setting, where its
/// value came from, and what to do; the underlying failure (a file that cannot be read, TOML
/// that does not parse) is its [`source`](std::error::Error::source).
#[derive(Debug)]
pub struct ConfigError {
    setting: Option<&'static str>,
    origin: Option<Origin>,
    problem: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl ConfigError {
    /// A problem with `setting`, whose value came from `origin`.
    pub(crate) fn setting(setting: &'static str, origin: Origin, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            setting: Some(setting),
            origin: Some(origin),
            problem: problem.into(),
            source: None,
        }
    }

    /// A problem with `setting` that no source set (it is missing).
    pub(crate) fn missing(setting: &'static str, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            setting: Some(setting),
            origin: None,
            problem: problem.into(),
            source: None,
        }
    }

    /// A problem that is not one setting's (a file of settings, the HTTP client).
    pub(crate) fn other(problem: impl Into<String>) -> ConfigError {
        ConfigError {
            setting: None,
            origin: None,
            problem: problem.into(),
            source: None,
        }
    }

    /// Keeps the underlying failure as the error's source.
    pub(crate) fn caused_by(mut self, source: impl std::error::Error + Send + Sync + 'static) -> ConfigError {
        self.source = Some(Box::new(source));
        self
    }

    /// The setting at fault, by its Prefect name (`PREFECT_API_URL`, …), if one is.
    pub fn setting_name(&self) -> Option<&'static str> {
        self.setting
    }

    /// Where the faulty value came from (`None` for a missing setting).
    pub fn origin(&self) -> Option<&Origin> {
        self.origin.as_ref()
    }

    /// What is wrong and what to do.
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.setting, &self.origin) {
            (Some(setting), Some(origin)) => write!(f, "{setting} (from {origin}) {}", self.problem),
            (Some(setting), None) => write!(f, "{setting} {}", self.problem),
            (None, _) => write!(f, "{}", self.problem),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<ConfigError> for crate::Error {
    fn from(error: ConfigError) -> Self {
        crate::Error::Config(error)
    }
}
