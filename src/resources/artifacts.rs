//! Artifacts: markdown, table and link artifacts; the latest by key; list.

use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::query::ArtifactQuery;
use crate::resources::{call, send_on_await};
use crate::types::{Artifact, ArtifactCreate};
use crate::{Client, Error};

/// Artifacts; from [`Client::artifacts`]. A key (lowercase letters, digits and dashes) groups
/// versions of one artifact; the latest is what Prefect's UI shows.
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client, run: uuid::Uuid) -> Result<(), prefect_client::Error> {
/// let artifacts = client.artifacts();
/// artifacts.create_markdown("nightly-report", "# 500 rows loaded").flow_run(run).await?;
/// artifacts.create_link("dashboard", "https://example.com/d/1").text("Dashboard").await?;
/// let latest = artifacts.get_latest("nightly-report").await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Artifacts<'a> {
    client: &'a Client,
}

impl<'a> Artifacts<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Artifacts { client }
    }

    /// A markdown artifact; set its options, then [`send`](CreateArtifact::send).
    pub fn create_markdown(&self, key: &str, markdown: &str) -> CreateArtifact {
        CreateArtifact::new(self.client, key, "markdown", Ok(json!(markdown)))
    }

    /// A table artifact: `rows` as any value serializing to a list of objects (or of lists).
    pub fn create_table<T: Serialize + ?Sized>(&self, key: &str, rows: &T) -> CreateArtifact {
        let rows = match serde_json::to_value(rows) {
            // Prefect stores tables as JSON text.
            Ok(rows @ Value::Array(_)) => Ok(json!(rows.to_string())),
            Ok(_) => Err("must serialize to a list of rows".to_string()),
            Err(e) => Err(format!("cannot be serialized: {e}")),
        };
        CreateArtifact::new(self.client, key, "table", rows)
    }

    /// A link artifact, shown as the link itself unless [`text`](CreateArtifact::text) is set.
    pub fn create_link(&self, key: &str, link: &str) -> CreateArtifact {
        let mut create =
            CreateArtifact::new(self.client, key, "link", Ok(json!(format!("[{link}]({link})"))));
        create.link = Some(link.to_string());
        create
    }

    /// The artifact with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no artifact has this id; any other error of the request.
    pub async fn get(&self, id: Uuid) -> Result<Artifact, Error> {
        call!(self.client, read_artifact(&id))
    }

    /// Deletes the artifact with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no artifact has this id; any other error of the request.
    pub async fn delete(&self, id: Uuid) -> Result<(), Error> {
        call!(self.client, delete_artifact(&id))
    }

    /// The latest version of the artifact `key`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent);
    /// [`Error::NotFound`] when there is none; any other error of the request.
    pub async fn get_latest(&self, key: &str) -> Result<Artifact, Error> {
        check_key(key)?;
        call!(self.client, read_latest_artifact(key))
    }

    crate::resources::list_verbs!("artifacts", ArtifactQuery => Artifact);
}

/// An artifact to create; from [`Artifacts::create_markdown`], [`Artifacts::create_table`] or
/// [`Artifacts::create_link`]. Bad input fails [`send`](CreateArtifact::send) before anything
/// is sent.
#[derive(Debug, Clone)]
#[must_use = "await it (or call .send().await) to create the artifact"]
pub struct CreateArtifact {
    client: Client,
    key: String,
    kind: &'static str,
    data: Result<Value, String>,
    link: Option<String>,
    flow_run_id: Option<Uuid>,
    task_run_id: Option<Uuid>,
    description: Option<String>,
}

impl CreateArtifact {
    fn new(client: &Client, key: &str, kind: &'static str, data: Result<Value, String>) -> Self {
        CreateArtifact {
            client: client.clone(),
            key: key.to_string(),
            kind,
            data,
            link: None,
            flow_run_id: None,
            task_run_id: None,
            description: None,
        }
    }

    /// Attaches the artifact to a flow run.
    pub fn flow_run(mut self, id: Uuid) -> Self {
        self.flow_run_id = Some(id);
        self
    }

    /// Attaches the artifact to a task run.
    pub fn task_run(mut self, id: Uuid) -> Self {
        self.task_run_id = Some(id);
        self
    }

    /// A description, shown in Prefect's UI (markdown).
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// For a link artifact: the text shown for the link.
    pub fn text(mut self, text: &str) -> Self {
        if let Some(link) = &self.link {
            self.data = Ok(json!(format!("[{text}]({link})")));
        }
        self
    }

    /// Creates the artifact.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad key or table rows that are not a list (nothing
    /// sent); any error of the request.
    pub async fn send(self) -> Result<Artifact, Error> {
        check_key(&self.key)?;
        let data = self
            .data
            .map_err(|problem| Error::invalid("artifact data", problem))?;
        let body = ArtifactCreate {
            data: Some(data),
            description: self.description,
            flow_run_id: self.flow_run_id,
            key: Some(self.key),
            metadata: None,
            task_run_id: self.task_run_id,
            type_: Some(self.kind.to_string()),
        };
        call!(self.client, create_artifact(&body))
    }
}

send_on_await! {
    CreateArtifact => Artifact;
}

/// Prefect's artifact keys: lowercase letters, digits and dashes.
fn check_key(key: &str) -> Result<(), Error> {
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(Error::invalid(
            "artifact key",
            format!("{key:?}; use lowercase letters, digits and dashes, e.g. \"nightly-report\""),
        ));
    }
    Ok(())
}
