//! Variables: typed get and set, list, delete.

use futures_core::Stream;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::unwrap_response;
use crate::resources::pagination::{STREAM_PAGE_SIZE, paginate, typed};
use crate::types::{ReadVariablesBody, Variable};
use crate::{Client, Error};

/// Variables; from [`Client::variables`]. Values are any JSON: read and write them as your own
/// serde types.
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Settings { batch: u32 }
///
/// client.variables().set("etl-settings", &Settings { batch: 500 }).await?;
/// let settings: Option<Settings> = client.variables().get("etl-settings").await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Variables<'a> {
    client: &'a Client,
}

impl<'a> Variables<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Variables { client }
    }

    /// The variable's value as `T`, or `None` if there is no such variable.
    pub async fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, Error> {
        let Some(variable) = self.read(name).await? else {
            return Ok(None);
        };
        let value = serde_json::to_value(&variable.value).unwrap_or(serde_json::Value::Null);
        serde_json::from_value(value).map(Some).map_err(|e| {
            Error::invalid(
                "variable value",
                format!(
                    "{name:?} does not hold the type asked for ({e}); read it as serde_json::Value to see it"
                ),
            )
        })
    }

    /// The variable, or `None` if there is no such variable.
    pub async fn read(&self, name: &str) -> Result<Option<Variable>, Error> {
        check_variable_name(name)?;
        match unwrap_response(
            "read_variable_by_name",
            self.client.raw().read_variable_by_name(name).await,
        )
        .await
        {
            Ok(variable) => Ok(Some(variable)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sets the variable to `value`, creating it if needed.
    pub async fn set<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<(), Error> {
        check_variable_name(name)?;
        let value = serde_json::to_value(value)
            .map_err(|e| Error::invalid("variable value", format!("cannot be serialized: {e}")))?;
        let update = typed("variable", json!({ "value": value }))?;
        match unwrap_response(
            "update_variable_by_name",
            self.client.raw().update_variable_by_name(name, &update).await,
        )
        .await
        {
            Err(e) if e.is_not_found() => {
                let create = typed("variable", json!({ "name": name, "value": value }))?;
                match unwrap_response(
                    "create_variable",
                    self.client.raw().create_variable(&create).await,
                )
                .await
                {
                    Ok(_) => Ok(()),
                    // Created by someone else meanwhile: set it.
                    Err(e) if e.is_conflict() => {
                        unwrap_response(
                            "update_variable_by_name",
                            self.client.raw().update_variable_by_name(name, &update).await,
                        )
                        .await
                    }
                    Err(e) => Err(e),
                }
            }
            other => other,
        }
    }

    /// Deletes the variable; `Ok` also if it did not exist.
    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        check_variable_name(name)?;
        match unwrap_response(
            "delete_variable_by_name",
            self.client.raw().delete_variable_by_name(name).await,
        )
        .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// Every variable matching `filter` (`ReadVariablesBody::default()` for all).
    pub fn stream(
        &self,
        filter: ReadVariablesBody,
    ) -> impl Stream<Item = Result<Variable, Error>> + Send + use<> {
        let client = self.client.clone();
        paginate(STREAM_PAGE_SIZE, move |offset, limit| {
            let (client, mut page) = (client.clone(), filter.clone());
            page.offset = offset;
            page.limit = Some(i64::from(limit));
            async move { unwrap_response("read_variables", client.raw().read_variables(&page).await).await }
        })
    }
}

/// Variable names are 1 to 255 characters, without `/` (it would change the URL); the server
/// checks the rest.
fn check_variable_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > 255 || name.contains('/') || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "variable name",
            format!(
                "{name:?}; use 1 to 255 characters without '/', e.g. lowercase letters, digits, '-' and '_'"
            ),
        ));
    }
    Ok(())
}
