//! Flows: create, get by id or name, list.

use uuid::Uuid;

use crate::query::FlowQuery;
use crate::resources::{call, check_name, generated_name};
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

    crate::resources::list_verbs!("flows", FlowQuery => Flow);
}
