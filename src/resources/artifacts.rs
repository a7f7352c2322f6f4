//! Artifacts: markdown, table and link artifacts; the latest by key.

use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::unwrap_response;
use crate::resources::pagination::typed;
use crate::types::Artifact;
use crate::{Client, Error};

/// Artifacts; from [`Client::artifacts`]. A key (lowercase letters, digits and dashes) groups
/// versions of one artifact; the latest is what Prefect's UI shows.
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
/// let artifacts = client.artifacts();
/// artifacts.create_markdown("nightly-report", "# 500 rows loaded", None).await?;
/// let latest = artifacts.read_latest("nightly-report").await?;
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

    /// A markdown artifact, optionally of a flow run.
    pub async fn create_markdown(
        &self,
        key: &str,
        markdown: &str,
        flow_run_id: Option<Uuid>,
    ) -> Result<Artifact, Error> {
        self.create(key, "markdown", json!(markdown), flow_run_id).await
    }

    /// A table artifact: rows as any values serializing to a list of objects (or of lists).
    pub async fn create_table<T: Serialize + ?Sized>(
        &self,
        key: &str,
        rows: &T,
        flow_run_id: Option<Uuid>,
    ) -> Result<Artifact, Error> {
        let rows = serde_json::to_value(rows)
            .map_err(|e| Error::invalid("table", format!("cannot be serialized: {e}")))?;
        if !rows.is_array() {
            return Err(Error::invalid("table", "must serialize to a list of rows"));
        }
        // Prefect stores tables as JSON text.
        self.create(key, "table", json!(rows.to_string()), flow_run_id)
            .await
    }

    /// A link artifact, shown as `text` (the link itself when `None`).
    pub async fn create_link(
        &self,
        key: &str,
        link: &str,
        text: Option<&str>,
        flow_run_id: Option<Uuid>,
    ) -> Result<Artifact, Error> {
        let markdown = format!("[{}]({link})", text.unwrap_or(link));
        self.create(key, "link", json!(markdown), flow_run_id).await
    }

    async fn create(
        &self,
        key: &str,
        kind: &str,
        data: Value,
        flow_run_id: Option<Uuid>,
    ) -> Result<Artifact, Error> {
        check_key(key)?;
        let body = typed(
            "artifact",
            json!({ "key": key, "type": kind, "data": data, "flow_run_id": flow_run_id }),
        )?;
        unwrap_response("create_artifact", self.client.raw().create_artifact(&body).await).await
    }

    /// The latest version of the artifact `key`.
    pub async fn read_latest(&self, key: &str) -> Result<Artifact, Error> {
        check_key(key)?;
        unwrap_response(
            "read_latest_artifact",
            self.client.raw().read_latest_artifact(key).await,
        )
        .await
    }
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
