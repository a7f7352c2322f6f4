//! Pull steps: what a worker does before it runs a deployment's flow (clone a repository, move
//! into a directory, fetch files from a bucket, run a script, install requirements), as
//! Prefect stores them: each step a one-key object keyed by the import path of the function
//! Prefect calls, e.g. `{"prefect.deployments.steps.run_shell_script": {"script": "echo ready"}}`.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

const GIT_CLONE: &str = "prefect.deployments.steps.git_clone";
const SET_WORKING_DIRECTORY: &str = "prefect.deployments.steps.set_working_directory";
const RUN_SHELL_SCRIPT: &str = "prefect.deployments.steps.run_shell_script";
const PIP_INSTALL_REQUIREMENTS: &str = "prefect.deployments.steps.pip_install_requirements";
const PULL_FROM_S3: &str = "prefect_aws.deployments.steps.pull_from_s3";
const PULL_FROM_GCS: &str = "prefect_gcp.deployments.steps.pull_from_gcs";
const PULL_FROM_AZURE: &str = "prefect_azure.deployments.steps.pull_from_azure_blob_storage";

/// One pull step of a deployment; add it with
/// [`DeploymentSpec::pull_step`](super::DeploymentSpec::pull_step).
///
/// A step this SDK does not type (another function, or a typed one with keys this SDK does not
/// know) is read as [`PullStep::Other`] and sent back as it came.
///
/// ```
/// use prefect_client::resources::deployments::{BlockReference, GitClone, PullStep, RunShellScript};
///
/// let steps = [
///     PullStep::from(
///         GitClone::new("https://github.com/acme/etl.git")
///             .branch("main")
///             .credentials(BlockReference::new("github-credentials", "acme")),
///     ),
///     PullStep::set_working_directory("/opt/etl"),
///     RunShellScript::new("make data").stream_output(false).into(),
/// ];
/// # let _ = steps;
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PullStep {
    /// `prefect.deployments.steps.git_clone`: clones a repository into the working directory.
    GitClone(GitClone),
    /// `prefect.deployments.steps.set_working_directory`: moves into a directory.
    SetWorkingDirectory(SetWorkingDirectory),
    /// `prefect_aws.deployments.steps.pull_from_s3`: copies a folder of an S3 bucket.
    PullFromS3(BucketPull),
    /// `prefect_gcp.deployments.steps.pull_from_gcs`: copies a folder of a GCS bucket.
    PullFromGcs(BucketPull),
    /// `prefect_azure.deployments.steps.pull_from_azure_blob_storage`: copies a folder of an
    /// Azure Blob Storage container (the [`BucketPull::bucket`] is the container).
    PullFromAzureBlobStorage(BucketPull),
    /// `prefect.deployments.steps.run_shell_script`: runs a command.
    RunShellScript(RunShellScript),
    /// `prefect.deployments.steps.pip_install_requirements`: installs a requirements file.
    PipInstallRequirements(PipInstallRequirements),
    /// Any other step, as Prefect stores it (a one-key object), sent back unchanged.
    Other(Value),
}

impl PullStep {
    /// Moves into `directory` (relative to where the steps before left the worker).
    pub fn set_working_directory(directory: impl Into<String>) -> PullStep {
        PullStep::SetWorkingDirectory(SetWorkingDirectory {
            directory: directory.into(),
            common: Common::default(),
        })
    }

    /// The step as Prefect stores it: `{"<import path>": {<arguments>}}`.
    pub fn to_json(&self) -> Value {
        let (path, arguments) = match self {
            PullStep::Other(value) => return value.clone(),
            PullStep::GitClone(step) => (GIT_CLONE, object(step)),
            PullStep::SetWorkingDirectory(step) => (SET_WORKING_DIRECTORY, object(step)),
            PullStep::PullFromS3(step) => (PULL_FROM_S3, object(step)),
            PullStep::PullFromGcs(step) => (PULL_FROM_GCS, object(step)),
            PullStep::PullFromAzureBlobStorage(step) => {
                let mut arguments = object(step);
                if let Some(bucket) = arguments.remove("bucket") {
                    arguments.insert("container".to_string(), bucket);
                }
                (PULL_FROM_AZURE, arguments)
            }
            PullStep::RunShellScript(step) => (RUN_SHELL_SCRIPT, object(step)),
            PullStep::PipInstallRequirements(step) => (PIP_INSTALL_REQUIREMENTS, object(step)),
        };
        Value::Object(Map::from_iter([(path.to_string(), Value::Object(arguments))]))
    }

    /// The step Prefect stores as `value`: typed when this SDK knows the step and every key
    /// of it, else [`PullStep::Other`].
    pub fn from_json(value: &Value) -> PullStep {
        typed(value).unwrap_or_else(|| PullStep::Other(value.clone()))
    }
}

/// The typed step `value` is, if it is one this SDK knows with no key it does not know.
fn typed(value: &Value) -> Option<PullStep> {
    let object = value.as_object().filter(|object| object.len() == 1)?;
    let (path, arguments) = object.iter().next()?;
    Some(match path.as_str() {
        GIT_CLONE => PullStep::GitClone(decode(arguments)?),
        SET_WORKING_DIRECTORY => PullStep::SetWorkingDirectory(decode(arguments)?),
        PULL_FROM_S3 => PullStep::PullFromS3(decode(arguments)?),
        PULL_FROM_GCS => PullStep::PullFromGcs(decode(arguments)?),
        PULL_FROM_AZURE => {
            let mut arguments = arguments.as_object()?.clone();
            if arguments.contains_key("bucket") {
                return None;
            }
            let container = arguments.remove("container")?;
            arguments.insert("bucket".to_string(), container);
            PullStep::PullFromAzureBlobStorage(decode(&Value::Object(arguments))?)
        }
        RUN_SHELL_SCRIPT => PullStep::RunShellScript(decode(arguments)?),
        PIP_INSTALL_REQUIREMENTS => PullStep::PipInstallRequirements(decode(arguments)?),
        _ => return None,
    })
}

/// `value` as `T`, `None` when it has a key `T` does not know (so it is kept whole instead).
fn decode<T: DeserializeOwned + Serialize>(value: &Value) -> Option<T> {
    let step: T = T::deserialize(value).ok()?;
    let known = object(&step);
    let arguments = value.as_object()?;
    arguments
        .iter()
        .all(|(key, v)| known.get(key) == Some(v) || (v.is_null() && !known.contains_key(key)))
        .then_some(step)
}

/// The arguments of a typed step (its struct serialized; always an object).
fn object(step: &impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(step) {
        Ok(Value::Object(object)) => object,
        _ => Map::new(),
    }
}

impl Serialize for PullStep {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PullStep {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PullStep, D::Error> {
        Ok(PullStep::from_json(&Value::deserialize(deserializer)?))
    }
}

/// The keys Prefect takes beside any step's arguments: `id` (its outputs are then
/// `{{ <id>.<output> }}` in later steps) and `requires` (a package installed before it runs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Common {
    /// The step's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The packages to install before it runs (`"prefect-aws>=0.5"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires: Option<String>,
}

/// A block document named as Prefect's templates name it: `{{ prefect.blocks.<slug>.<name> }}`,
/// resolved by the worker when the step runs (a `github-credentials` block for a clone, an
/// `aws-credentials` block for S3, a `secret` block as an access token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockReference {
    /// The block type's slug (`"github-credentials"`).
    pub block_type_slug: String,
    /// The block document's name.
    pub name: String,
}

impl BlockReference {
    /// The block document `name` of the block type `block_type_slug`.
    pub fn new(block_type_slug: impl Into<String>, name: impl Into<String>) -> BlockReference {
        BlockReference {
            block_type_slug: block_type_slug.into(),
            name: name.into(),
        }
    }

    /// The reference read from its template, `None` for any other text.
    pub fn parse(template: &str) -> Option<BlockReference> {
        let inner = template.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
        let (slug, name) = inner.strip_prefix("prefect.blocks.")?.split_once('.')?;
        let plain = |s: &str| !s.is_empty() && !s.contains(char::is_whitespace);
        (plain(slug) && plain(name)).then(|| BlockReference::new(slug, name))
    }
}

impl fmt::Display for BlockReference {
    /// `{{ prefect.blocks.<slug>.<name> }}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{{{{ prefect.blocks.{}.{} }}}}",
            self.block_type_slug, self.name
        )
    }
}

impl Serialize for BlockReference {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BlockReference {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<BlockReference, D::Error> {
        let text = String::deserialize(deserializer)?;
        BlockReference::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("{text:?} is not {{{{ prefect.blocks.<slug>.<name> }}}}"))
        })
    }
}

/// Adds `id` and `requires` setters, and `From<$step> for PullStep` when a variant is named.
macro_rules! step {
    ($step:ident) => {
        impl $step {
            /// The step's id: later steps read its outputs as `{{ <id>.<output> }}`.
            pub fn id(mut self, id: impl Into<String>) -> Self {
                self.common.id = Some(id.into());
                self
            }

            /// Packages installed before the step runs (`"prefect-aws>=0.5"`).
            pub fn requires(mut self, requires: impl Into<String>) -> Self {
                self.common.requires = Some(requires.into());
                self
            }
        }
    };
    ($step:ident => $variant:ident) => {
        step!($step);

        impl From<$step> for PullStep {
            fn from(step: $step) -> PullStep {
                PullStep::$variant(step)
            }
        }
    };
}

/// Clones a git repository (`prefect.deployments.steps.git_clone`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GitClone {
    /// The repository's URL.
    pub repository: String,
    /// The branch (default: the repository's default branch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// A commit to check out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_sha: Option<String>,
    /// Whether submodules are cloned too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_submodules: bool,
    /// Only these directories (a sparse checkout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directories: Option<Vec<String>>,
    /// The credentials block (`github-credentials`, `gitlab-credentials`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<BlockReference>,
    /// An access token, from a block (a `secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<BlockReference>,
    /// `id` and `requires`.
    #[serde(flatten)]
    pub common: Common,
}

impl GitClone {
    /// Clones `repository`.
    pub fn new(repository: impl Into<String>) -> GitClone {
        GitClone {
            repository: repository.into(),
            branch: None,
            commit_sha: None,
            include_submodules: false,
            directories: None,
            credentials: None,
            access_token: None,
            common: Common::default(),
        }
    }

    /// The branch to clone.
    pub fn branch(mut self, branch: impl Into<String>) -> Self {
        self.branch = Some(branch.into());
        self
    }

    /// The commit to check out.
    pub fn commit_sha(mut self, sha: impl Into<String>) -> Self {
        self.commit_sha = Some(sha.into());
        self
    }

    /// Clones submodules too.
    pub fn include_submodules(mut self, include: bool) -> Self {
        self.include_submodules = include;
        self
    }

    /// Checks out only these directories.
    pub fn directories(mut self, directories: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.directories = Some(directories.into_iter().map(Into::into).collect());
        self
    }

    /// The credentials block the worker clones with.
    pub fn credentials(mut self, block: BlockReference) -> Self {
        self.credentials = Some(block);
        self
    }

    /// The block holding an access token the worker clones with.
    pub fn access_token(mut self, block: BlockReference) -> Self {
        self.access_token = Some(block);
        self
    }
}
step!(GitClone => GitClone);

/// Moves into a directory (`prefect.deployments.steps.set_working_directory`); made by
/// [`PullStep::set_working_directory`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetWorkingDirectory {
    /// The directory.
    pub directory: String,
    /// `id` and `requires`.
    #[serde(flatten)]
    pub common: Common,
}
step!(SetWorkingDirectory => SetWorkingDirectory);

/// Copies a folder of a bucket (or Azure container) into the working directory; a
/// [`PullStep::PullFromS3`], [`PullStep::PullFromGcs`] or
/// [`PullStep::PullFromAzureBlobStorage`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketPull {
    /// The bucket (the container, for Azure).
    pub bucket: String,
    /// The folder in it.
    pub folder: String,
    /// The credentials block (`aws-credentials`, `gcp-credentials`,
    /// `azure-blob-storage-credentials`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<BlockReference>,
    /// `id` and `requires`.
    #[serde(flatten)]
    pub common: Common,
}

impl BucketPull {
    /// The folder `folder` of `bucket`.
    pub fn new(bucket: impl Into<String>, folder: impl Into<String>) -> BucketPull {
        BucketPull {
            bucket: bucket.into(),
            folder: folder.into(),
            credentials: None,
            common: Common::default(),
        }
    }

    /// The credentials block the worker reads with.
    pub fn credentials(mut self, block: BlockReference) -> Self {
        self.credentials = Some(block);
        self
    }
}
step!(BucketPull);

/// Runs a command (`prefect.deployments.steps.run_shell_script`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunShellScript {
    /// The command, or several lines of them.
    pub script: String,
    /// Where it runs (default: the working directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    /// Environment variables it gets beside the worker's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// Whether its output goes to the worker's output (Prefect's default: true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_output: Option<bool>,
    /// Whether `$VARIABLES` in the script are expanded (Prefect's default: false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expand_env_vars: Option<bool>,
    /// `id` and `requires`.
    #[serde(flatten)]
    pub common: Common,
}

impl RunShellScript {
    /// Runs `script`.
    pub fn new(script: impl Into<String>) -> RunShellScript {
        RunShellScript {
            script: script.into(),
            directory: None,
            env: None,
            stream_output: None,
            expand_env_vars: None,
            common: Common::default(),
        }
    }

    /// Runs it in `directory`.
    pub fn directory(mut self, directory: impl Into<String>) -> Self {
        self.directory = Some(directory.into());
        self
    }

    /// Sets an environment variable for it.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env
            .get_or_insert_with(BTreeMap::new)
            .insert(name.into(), value.into());
        self
    }

    /// Whether its output goes to the worker's output.
    pub fn stream_output(mut self, stream: bool) -> Self {
        self.stream_output = Some(stream);
        self
    }

    /// Whether `$VARIABLES` in the script are expanded.
    pub fn expand_env_vars(mut self, expand: bool) -> Self {
        self.expand_env_vars = Some(expand);
        self
    }
}
step!(RunShellScript => RunShellScript);

/// Installs a requirements file with pip (`prefect.deployments.steps.pip_install_requirements`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PipInstallRequirements {
    /// The directory holding the file (default: the working directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    /// The file (Prefect's default: `requirements.txt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements_file: Option<String>,
    /// Whether pip's output goes to the worker's output (Prefect's default: true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_output: Option<bool>,
    /// `id` and `requires`.
    #[serde(flatten)]
    pub common: Common,
}

impl PipInstallRequirements {
    /// Installs `requirements.txt` of the working directory.
    pub fn new() -> PipInstallRequirements {
        PipInstallRequirements::default()
    }

    /// The directory holding the file.
    pub fn directory(mut self, directory: impl Into<String>) -> Self {
        self.directory = Some(directory.into());
        self
    }

    /// The file's name.
    pub fn requirements_file(mut self, file: impl Into<String>) -> Self {
        self.requirements_file = Some(file.into());
        self
    }

    /// Whether pip's output goes to the worker's output.
    pub fn stream_output(mut self, stream: bool) -> Self {
        self.stream_output = Some(stream);
        self
    }
}
step!(PipInstallRequirements => PipInstallRequirements);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn steps_are_sent_keyed_by_their_import_path() {
        let steps = vec![
            PullStep::from(
                GitClone::new("https://github.com/acme/etl.git")
                    .branch("main")
                    .credentials(BlockReference::new("github-credentials", "acme"))
                    .id("clone"),
            ),
            PullStep::set_working_directory("/opt/etl"),
            PullStep::PullFromAzureBlobStorage(BucketPull::new("c", "f")),
            RunShellScript::new("echo ready").env("A", "1").into(),
            PipInstallRequirements::new().requires("pip>=23").into(),
        ];
        assert_eq!(
            serde_json::to_value(&steps).unwrap(),
            json!([
                { "prefect.deployments.steps.git_clone": {
                    "repository": "https://github.com/acme/etl.git", "branch": "main",
                    "credentials": "{{ prefect.blocks.github-credentials.acme }}", "id": "clone" } },
                { "prefect.deployments.steps.set_working_directory": { "directory": "/opt/etl" } },
                { "prefect_azure.deployments.steps.pull_from_azure_blob_storage": { "container": "c", "folder": "f" } },
                { "prefect.deployments.steps.run_shell_script": { "script": "echo ready", "env": { "A": "1" } } },
                { "prefect.deployments.steps.pip_install_requirements": { "requires": "pip>=23" } },
            ])
        );
        let back: Vec<PullStep> = serde_json::from_value(serde_json::to_value(&steps).unwrap()).unwrap();
        assert_eq!(back, steps);
    }

    #[test]
    fn a_step_with_anything_unknown_is_kept_whole() {
        for value in [
            json!({ "acme.steps.fetch": { "url": "s3://x" } }),
            json!({ "prefect.deployments.steps.run_shell_script": { "script": "x", "shell": "zsh" } }),
            json!({ "prefect.deployments.steps.git_clone": { "repository": "r", "credentials": "plain text" } }),
            json!({ "a": {}, "b": {} }),
        ] {
            let step = PullStep::from_json(&value);
            assert!(matches!(step, PullStep::Other(_)), "{value}");
            assert_eq!(step.to_json(), value);
        }
    }

    #[test]
    fn block_references_read_back_from_their_template() {
        let reference = BlockReference::new("secret", "token");
        assert_eq!(reference.to_string(), "{{ prefect.blocks.secret.token }}");
        assert_eq!(
            BlockReference::parse("{{prefect.blocks.secret.token}}"),
            Some(reference)
        );
        assert_eq!(BlockReference::parse("{{ prefect.variables.x }}"), None);
    }
}
