//! One handle per Prefect resource, each in its own file. Handles borrow the
//! [`Client`](crate::Client) and return the generated types.
//!
//! Every handle uses the same verbs (see the crate documentation's table): `create`, `get(id)`,
//! `get_by_name(name)`, `list_page(&filter)`, `stream(filter)`, `update…`, `delete(id)` /
//! `delete_by_name(name)`. Operations with optional arguments return a builder ending in
//! `send()`. [`OptionalExt::optional`](crate::OptionalExt::optional) turns a missing object
//! into `None` for any of them.

pub mod artifacts;
pub mod concurrency_limits;
pub mod deployments;
pub mod events;
pub mod flow_runs;
pub mod flows;
pub mod global_concurrency_limits;
pub mod logs;
pub mod pagination;
pub mod variables;
pub mod work_pools;

use crate::Error;

/// Calls the generated operation `op` on a client and turns its result into the SDK's, naming
/// the operation once: `call!(client, read_flow(&id))`.
macro_rules! call {
    ($client:expr, $op:ident ( $($arg:expr),* $(,)? )) => {
        $crate::response::unwrap_response(stringify!($op), $client.raw().$op($($arg),*).await).await
    };
}
pub(crate) use call;

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
