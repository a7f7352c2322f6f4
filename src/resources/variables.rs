//! Variables: typed values, set, list, delete.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use crate::query::VariableQuery;
use crate::resources::call;
use crate::types::{Variable, VariableCreate, VariableUpdate};
use crate::{Client, Error};

/// Variables; from [`Client::variables`]. Values are any JSON: read and write them as your own
/// serde types.
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
/// use prefect_client::OptionalExt;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Settings { batch: u32 }
///
/// client.variables().set("etl-settings", &Settings { batch: 500 }).await?;
/// let settings: Settings = client.variables().value("etl-settings").await?;
/// // A variable that may not exist:
/// let other: Option<Settings> = client.variables().value("other").await.optional()?;
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

    /// The variable with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no variable has this id; any other error of the request.
    pub async fn get(&self, id: Uuid) -> Result<Variable, Error> {
        call!(self.client, read_variable(&id))
    }

    /// Deletes the variable with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no variable has this id; any other error of the request.
    pub async fn delete(&self, id: Uuid) -> Result<(), Error> {
        call!(self.client, delete_variable(&id))
    }

    /// The variable named `name`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent);
    /// [`Error::NotFound`] when there is none; any other error of the request.
    pub async fn get_by_name(&self, name: &str) -> Result<Variable, Error> {
        check_variable_name(name)?;
        call!(self.client, read_variable_by_name(name))
    }

    /// The value of the variable `name`, as `T`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent);
    /// [`Error::NotFound`] when there is none; [`Error::InvalidInput`] when it does not hold the type asked for; any other error of the request.
    pub async fn value<T: DeserializeOwned>(&self, name: &str) -> Result<T, Error> {
        let variable = self.get_by_name(name).await?;
        let value = serde_json::to_value(&variable.value).unwrap_or(serde_json::Value::Null);
        serde_json::from_value(value).map_err(|e| {
            Error::invalid(
                "variable value",
                format!(
                    "{name:?} does not hold the type asked for ({e}); read it as serde_json::Value to see it"
                ),
            )
        })
    }

    /// Sets the variable to `value` (any JSON, `null` included), creating it if needed.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name or a value that cannot be serialized (nothing
    /// sent); [`Error::Validation`] for a value the server refuses (too large); any error of
    /// the requests.
    pub async fn set<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<(), Error> {
        check_variable_name(name)?;
        let value = serde_json::to_value(value)
            .map_err(|e| Error::invalid("variable value", format!("cannot be serialized: {e}")))?;
        let update = VariableUpdate {
            name: None,
            tags: None,
            // Always sent, `null` too: a missing value would leave the old one.
            value: Some(any_value(value.clone())?),
        };
        match call!(self.client, update_variable_by_name(name, &update)) {
            Err(e) if e.is_not_found() => {
                let create = VariableCreate {
                    name: name
                        .parse()
                        .map_err(|e| Error::invalid("variable name", format!("{name:?}: {e}")))?,
                    tags: Vec::new(),
                    value: Some(any_value(value)?),
                };
                match call!(self.client, create_variable(&create)) {
                    Ok(_) => Ok(()),
                    // Created by someone else meanwhile: set it.
                    Err(e) if e.is_conflict() => call!(self.client, update_variable_by_name(name, &update)),
                    Err(e) => Err(e),
                }
            }
            other => other,
        }
    }

    /// Deletes the variable named `name`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (nothing sent);
    /// [`Error::NotFound`] when there is none; any other error of the request.
    pub async fn delete_by_name(&self, name: &str) -> Result<(), Error> {
        check_variable_name(name)?;
        call!(self.client, delete_variable_by_name(name))
    }

    crate::resources::list_verbs!("variables", VariableQuery => Variable);
}

/// Any JSON value as a generated variable value (its union keeps every value, `null` too, as
/// a member of its own or as the catch-all).
fn any_value<T: DeserializeOwned>(value: Value) -> Result<T, Error> {
    serde_json::from_value(value)
        .map_err(|e| Error::invalid("variable value", format!("not a value Prefect stores: {e}")))
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
