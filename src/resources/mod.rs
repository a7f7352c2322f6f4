//! One handle per Prefect resource, each in its own file. Handles borrow the
//! [`Client`](crate::Client) and return the generated types.
//!
//! Every handle uses the same verbs (see the crate documentation's table): `create`, `get(id)`,
//! `get_by_name(name)`, `list_page(&filter)`, `stream(filter)`, `update…`, `delete(id)` /
//! `delete_by_name(name)`. Operations with optional arguments return a builder ending in
//! `send()`. [`OptionalExt::optional`](crate::OptionalExt::optional) turns a missing object
//! into `None` for any of them.

mod applied;
pub use applied::{Applied, Change};
pub mod artifacts;
pub mod automations;
pub mod blocks;
pub mod concurrency_limits;
pub mod deployments;
pub mod events;
pub mod flow_runs;
pub mod flows;
pub mod global_concurrency_limits;
pub mod logs;
mod pagination;
pub(crate) use pagination::{PAGE_SIZE, within_server_cap};
pub mod task_runs;
pub mod variables;
pub mod work_pools;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::Error;

/// Calls the generated operation `op` on a client and turns its result into the SDK's, naming
/// the operation once: `call!(client, read_flow(&id))`.
macro_rules! call {
    ($client:expr, $op:ident ( $($arg:expr),* $(,)? )) => {
        $crate::response::unwrap_response(stringify!($op), $client.raw().$op($($arg),*).await)
            .await
            .map_err(|e| e.in_client($client.config()))
    };
}
pub(crate) use call;

/// The two list verbs of a handle (a struct with a `client: &Client` field) whose list call
/// pages with `limit` and `offset`: `list_page(&query)` and `stream(query)`, over
/// `pagination`. `list_verbs!("flow runs", FlowRunQuery => FlowRunResponse);`
macro_rules! list_verbs {
    ($what:literal, $query:ty => $item:ty) => {
        #[doc = concat!("One page of ", $what, " matching `query` (its `limit` and `offset` apply).")]
        ///
        /// # Errors
        /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a `limit` below 1 (nothing
        /// sent); [`Error::Validation`](crate::Error::Validation) for a filter or page size the
        /// server refuses; any other error of the request.
        pub async fn list_page(&self, query: &$query) -> Result<Vec<$item>, $crate::Error> {
            $crate::resources::pagination::page(self.client, query).await
        }

        #[doc = concat!("Every one of the ", $what, " matching `query` (`Default::default()` for all), paged as it is consumed.")]
        ///
        /// # Errors
        /// The stream's last item is the error that stopped it: those of `list_page`, and an
        /// error of any page after the first.
        pub fn stream(
            &self,
            query: $query,
        ) -> impl ::futures_core::Stream<Item = Result<$item, $crate::Error>> + Send + use<> {
            $crate::resources::pagination::stream(self.client, query)
        }
    };
}
pub(crate) use list_verbs;

/// Lets an options builder be awaited directly: `.await` does what `.send().await` does, so
/// `limits.create("db", 5).await` and `limits.create("db", 5).send().await` are the same call.
/// `send_on_await! { CreateLimit => ConcurrencyLimitV2; }`.
macro_rules! send_on_await {
    ($($builder:ty => $output:ty;)*) => {$(
        impl ::std::future::IntoFuture for $builder {
            type Output = Result<$output, $crate::Error>;
            type IntoFuture =
                ::std::pin::Pin<Box<dyn ::std::future::Future<Output = Self::Output> + Send>>;

            fn into_future(self) -> Self::IntoFuture {
                Box::pin(self.send())
            }
        }
    )*};
}
pub(crate) use send_on_await;

/// The largest limit the server's database column holds (PostgreSQL `integer`).
pub const MAX_LIMIT: i64 = i32::MAX as i64;

/// Checks a limit or tag name the way the server will: not empty, no surrounding spaces, none
/// of `/ % & > <` (the server's pattern `^[^/%&><]+$`, and `/` would change the URL).
pub(crate) fn check_name(what: &'static str, name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::invalid(what, "it is empty; give a non-empty name"));
    }
    if name.trim() != name {
        return Err(Error::invalid(
            what,
            format!("{name:?} has leading or trailing spaces; remove them"),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '/' | '%' | '&' | '>' | '<') || c.is_control())
    {
        return Err(Error::invalid(
            what,
            format!("{name:?} contains {c:?}; names may not contain / % & > < or control characters"),
        ));
    }
    Ok(())
}

/// A name checked as [`check_name`] does, as the generated type of a request field (whose own
/// pattern is checked too).
pub(crate) fn generated_name<T: std::str::FromStr>(what: &'static str, name: &str) -> Result<T, Error>
where
    T::Err: std::fmt::Display,
{
    check_name(what, name)?;
    name.parse()
        .map_err(|e: T::Err| Error::invalid(what, format!("{name:?}: {e}")))
}

/// An option a builder was given a value it cannot take (a value for a free-form JSON field
/// that is not a JSON object, say): which option, and what is wrong. The builder keeps the
/// first until `send`, which reports it as [`Error::InvalidInput`] before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InvalidField {
    what: &'static str,
    problem: String,
}

impl InvalidField {
    pub(crate) fn new(what: &'static str, problem: impl Into<String>) -> InvalidField {
        InvalidField {
            what,
            problem: problem.into(),
        }
    }
}

impl From<InvalidField> for Error {
    fn from(invalid: InvalidField) -> Error {
        Error::invalid(invalid.what, invalid.problem)
    }
}

/// `value` as the JSON object of names to values that the field `what` takes; a value that
/// serializes to anything else (a number, a list, ...) or fails to serialize is refused, with
/// what to give instead.
pub(crate) fn json_object(
    what: &'static str,
    value: &impl Serialize,
) -> Result<Map<String, Value>, InvalidField> {
    let problem = match serde_json::to_value(value) {
        Ok(Value::Object(object)) => return Ok(object),
        Ok(other) => {
            let kind = match other {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                Value::Array(_) => "a list",
                Value::Object(_) => unreachable!("returned above"),
            };
            format!(
                "it serializes to {kind}, not a JSON object; give a map of names to values or a struct with named fields"
            )
        }
        Err(e) => format!(
            "it cannot be serialized to JSON ({e}); give a map with string keys or a struct with named fields"
        ),
    };
    Err(InvalidField::new(what, problem))
}

/// Checks a concurrency limit: 0 to [`MAX_LIMIT`].
pub(crate) fn check_limit(limit: i64) -> Result<(), Error> {
    if !(0..=MAX_LIMIT).contains(&limit) {
        return Err(Error::invalid(
            "limit",
            format!("{limit} is out of range; a concurrency limit is 0 to {MAX_LIMIT}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_server_pattern() {
        for ok in ["database", "tag:x", "a b", "ünï"] {
            check_name("tag", ok).unwrap();
        }
        for (bad, hint) in [
            ("", "empty"),
            ("a/b", "'/'"),
            ("50%", "'%'"),
            ("a&b", "'&'"),
            ("<x>", "'<'"),
            (" x", "spaces"),
            ("a\nb", "control"),
        ] {
            let err = check_name("tag", bad).unwrap_err();
            assert!(err.is_client_side());
            assert!(err.to_string().contains(hint), "{bad:?}: {err}");
        }
    }

    #[test]
    fn only_json_objects_are_taken_as_objects() {
        let object = json_object("parameters", &serde_json::json!({ "a": 1 })).unwrap();
        assert_eq!(object["a"], 1);
        #[derive(Serialize)]
        struct Named {
            day: u32,
        }
        assert_eq!(json_object("parameters", &Named { day: 29 }).unwrap()["day"], 29);
        for (value, kind) in [
            (serde_json::json!([1, 2]), "a list"),
            (serde_json::json!(3), "a number"),
            (Value::Null, "null"),
        ] {
            let err = Error::from(json_object("job variables", &value).unwrap_err());
            assert!(err.is_client_side());
            let text = err.to_string();
            assert!(
                text.starts_with("invalid job variables:")
                    && text.contains(kind)
                    && text.contains("JSON object"),
                "{text}"
            );
        }
        let keys_not_strings: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
        let text = Error::from(json_object("event payload", &keys_not_strings).unwrap_err()).to_string();
        assert!(
            text.contains("cannot be serialized") && text.contains("string keys"),
            "{text}"
        );
    }

    #[test]
    fn limits_are_bounded() {
        check_limit(0).unwrap();
        check_limit(MAX_LIMIT).unwrap();
        assert!(
            check_limit(-1)
                .unwrap_err()
                .to_string()
                .contains("0 to 2147483647")
        );
        assert!(check_limit(MAX_LIMIT + 1).is_err());
    }
}
