//! Flows: create, get by id or name, list.

use futures_core::Stream;
use uuid::Uuid;

use crate::query::FlowQuery;
use crate::resources::{call, check_name, generated_name, pagination};
use crate::types::{Flow, FlowCreate};
use crate::{Client, Error};

/// Flows; from [`Client::flows`].
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
/// let flow = client.flows().create("etl").await?;
/// assert_eq!(client.flows().get_by_name("etl").await?.id, flow.id);
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
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent); any other error of the request.
    pub async fn create(&self, name: &str) -> Result<Flow, Error> {
        let body = FlowCreate {
            labels: None,
            name: generated_name("flow name", name)?,
            tags: Vec::new(),
        };
        call!(self.client, create_flow(&body))
    }

    /// The flow with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no flow has this id; any other error of the request.
    pub async fn get(&self, id: Uuid) -> Result<Flow, Error> {
        call!(self.client, read_flow(&id))
    }

    /// The flow named `name`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent);
    /// [`Error::NotFound`] when there is none; any other error of the request.
    pub async fn get_by_name(&self, name: &str) -> Result<Flow, Error> {
        check_name("flow name", name)?;
        call!(self.client, read_flow_by_name(name))
    }

    /// Deletes the flow (and its deployments and runs) with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no flow (and its deployments and runs) has this id; any other error of the request.
    pub async fn delete(&self, id: Uuid) -> Result<(), Error> {
        call!(self.client, delete_flow(&id))
    }

    /// One page of flows matching `filter` (its `limit` and `offset` apply).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a `limit` below 1 (nothing sent);
    /// [`Error::Validation`] for a filter or page size the server refuses; any other error of the request.
    pub async fn list_page(&self, filter: &FlowQuery) -> Result<Vec<Flow>, Error> {
        pagination::page(self.client, filter).await
    }

    /// Every flow matching `filter` (`FlowQuery::default()` for all), paged as needed.
    ///
    /// # Errors
    /// The stream's last item is the error that stopped it: those of `list_page`, and an error
    /// of any page after the first.
    pub fn stream(&self, filter: FlowQuery) -> impl Stream<Item = Result<Flow, Error>> + Send + use<> {
        pagination::stream(self.client, filter)
    }
}
