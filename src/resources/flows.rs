//! Flows: create, read by id or name, list.

use futures_core::Stream;
use serde_json::json;
use uuid::Uuid;

use crate::error::unwrap_response;
use crate::resources::check_name;
use crate::resources::pagination::{STREAM_PAGE_SIZE, paginate, typed};
use crate::types::{Flow, ReadFlowsBody};
use crate::{Client, Error};

/// Flows; from [`Client::flows`].
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
/// let flow = client.flows().create("etl").await?;
/// assert_eq!(client.flows().read_by_name("etl").await?.id, flow.id);
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Flows<'a> {
    client: &'a Client,
}

impl<'a> Flows<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Flows { client }
    }

    /// Creates the flow `name`, or returns the existing one (the server upserts by name).
    pub async fn create(&self, name: &str) -> Result<Flow, Error> {
        check_name("flow name", name)?;
        let body = typed("flow", json!({ "name": name }))?;
        unwrap_response("create_flow", self.client.raw().create_flow(&body).await).await
    }

    /// Reads a flow by id.
    pub async fn read(&self, id: Uuid) -> Result<Flow, Error> {
        unwrap_response("read_flow", self.client.raw().read_flow(&id).await).await
    }

    /// Reads a flow by name.
    pub async fn read_by_name(&self, name: &str) -> Result<Flow, Error> {
        check_name("flow name", name)?;
        unwrap_response(
            "read_flow_by_name",
            self.client.raw().read_flow_by_name(name).await,
        )
        .await
    }

    /// One page of flows matching `filter` (its `limit` and `offset` apply).
    pub async fn filter(&self, filter: &ReadFlowsBody) -> Result<Vec<Flow>, Error> {
        unwrap_response("read_flows", self.client.raw().read_flows(filter).await).await
    }

    /// Every flow matching `filter` (`ReadFlowsBody::default()` for all), paged as needed.
    pub fn stream(&self, filter: ReadFlowsBody) -> impl Stream<Item = Result<Flow, Error>> + Send + use<> {
        let client = self.client.clone();
        paginate(STREAM_PAGE_SIZE, move |offset, limit| {
            let (client, mut page) = (client.clone(), filter.clone());
            page.offset = offset;
            page.limit = Some(i64::from(limit));
            async move { client.flows().filter(&page).await }
        })
    }
}
