//! Secret values of blocks: [`SecretStr`] and [`SecretValue`], which never show in `Debug`
//! (there is no `Display`) and are read only through `expose_…` calls; and the masking of a
//! block document's secret fields, wherever its data is shown.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::Error;

/// What Prefect's server shows for a secret value read without secrets (`obfuscate`).
pub(super) const OBFUSCATED: &str = "********";

/// A secret string field of a block (Prefect's `SecretStr`): `[REDACTED]` in `Debug`, read with
/// [`expose_secret`](Self::expose_secret). Its JSON Schema marks it as a secret
/// (`writeOnly`, `format: password`), so a block type holding it lists it in its
/// `secret_fields`: Prefect's UI and reads without secrets obfuscate it.
///
/// It serializes as the plain string, since a block's data is sent to Prefect that way.
///
/// ```
/// use prefect_client::resources::blocks::SecretStr;
///
/// let token = SecretStr::new("s3cr3t");
/// assert_eq!(format!("{token:?}"), "[REDACTED]");
/// assert_eq!(token.expose_secret(), "s3cr3t");
/// ```
#[derive(Clone)]
pub struct SecretStr(SecretString);

impl SecretStr {
    /// A secret holding `value`.
    pub fn new(value: impl Into<String>) -> SecretStr {
        SecretStr(SecretString::from(value.into()))
    }

    /// The secret itself.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl From<String> for SecretStr {
    fn from(value: String) -> SecretStr {
        SecretStr::new(value)
    }
}

impl From<&str> for SecretStr {
    fn from(value: &str) -> SecretStr {
        SecretStr::new(value)
    }
}

impl From<SecretString> for SecretStr {
    fn from(value: SecretString) -> SecretStr {
        SecretStr(value)
    }
}

impl Serialize for SecretStr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose_secret())
    }
}

impl<'de> Deserialize<'de> for SecretStr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SecretStr, D::Error> {
        String::deserialize(deserializer).map(SecretStr::new)
    }
}

/// A secret that is a string or any JSON (the value of Prefect's `Secret` block, or a field of
/// your own block): `[REDACTED]` in `Debug`, read with [`expose_str`](Self::expose_str),
/// [`expose_json`](Self::expose_json) or [`expose_as`](Self::expose_as). Its JSON Schema
/// marks it as a secret, as [`SecretStr`]'s does.
///
/// ```
/// use prefect_client::resources::blocks::SecretValue;
///
/// let login = SecretValue::json(&serde_json::json!({ "user": "ada", "password": "pw" })).unwrap();
/// assert_eq!(format!("{login:?}"), "[REDACTED]");
/// assert_eq!(login.expose_json()["user"], "ada");
/// assert_eq!(SecretValue::string("sk-1").expose_str(), Some("sk-1"));
/// ```
#[derive(Clone)]
pub struct SecretValue(Held);

/// A string as it is; any other JSON as its text, so that both are zeroed when dropped.
#[derive(Clone)]
enum Held {
    Str(SecretString),
    Json(SecretString),
}

impl SecretValue {
    /// A secret string.
    pub fn string(value: impl Into<String>) -> SecretValue {
        SecretValue(Held::Str(SecretString::from(value.into())))
    }

    /// A secret holding `value` as JSON (a map of credentials, say); a value that serializes
    /// to a string is a secret string.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `value` cannot be serialized to JSON (the message does not
    /// show the value).
    pub fn json(value: &impl Serialize) -> Result<SecretValue, Error> {
        match serde_json::to_value(value) {
            Ok(value) => Ok(SecretValue::from_json(value)),
            Err(_) => Err(Error::invalid(
                "secret value",
                "it cannot be serialized to JSON; give a string, or a map or struct with string keys",
            )),
        }
    }

    fn from_json(value: Value) -> SecretValue {
        match value {
            Value::String(text) => SecretValue::string(text),
            other => SecretValue(Held::Json(SecretString::from(other.to_string()))),
        }
    }

    /// The secret when it is a string.
    pub fn expose_str(&self) -> Option<&str> {
        match &self.0 {
            Held::Str(text) => Some(text.expose_secret()),
            Held::Json(_) => None,
        }
    }

    /// The secret as JSON (a string is a JSON string).
    pub fn expose_json(&self) -> Value {
        match &self.0 {
            Held::Str(text) => Value::String(text.expose_secret().to_string()),
            Held::Json(text) => serde_json::from_str(text.expose_secret()).unwrap_or(Value::Null),
        }
    }

    /// The secret as `T`, as Python's `Secret.get()` reads it: a string that holds JSON is
    /// that JSON (`"{\"a\": 1}"` reads as a map), any other string is the string.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the secret is not a `T` (the message does not show it).
    pub fn expose_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let value = self.expose_json();
        if let Value::String(text) = &value
            && let Ok(parsed) = serde_json::from_str::<Value>(text)
            && let Ok(decoded) = serde_json::from_value(parsed)
        {
            return Ok(decoded);
        }
        serde_json::from_value(value).map_err(|_| {
            Error::invalid(
                "secret value",
                format!(
                    "it is not a {} (its value is not shown); read it as serde_json::Value to see its shape",
                    std::any::type_name::<T>()
                ),
            )
        })
    }
}

impl From<SecretStr> for SecretValue {
    fn from(value: SecretStr) -> SecretValue {
        SecretValue(Held::Str(value.0))
    }
}

impl Serialize for SecretValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Held::Str(text) => serializer.serialize_str(text.expose_secret()),
            Held::Json(_) => self.expose_json().serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for SecretValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SecretValue, D::Error> {
        Value::deserialize(deserializer).map(SecretValue::from_json)
    }
}

/// `[REDACTED]` as `Debug`, and a JSON Schema (inlined where used) marked as a secret.
macro_rules! secret_type {
    ($($type:ident => $schema:tt;)*) => {$(
        impl fmt::Debug for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("[REDACTED]")
            }
        }

        impl JsonSchema for $type {
            fn inline_schema() -> bool {
                true
            }

            fn schema_name() -> Cow<'static, str> {
                stringify!($type).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    )*};
}

secret_type! {
    SecretStr => { "type": "string", "format": "password", "writeOnly": true };
    SecretValue => {
        "anyOf": [
            { "type": "string", "format": "password", "writeOnly": true },
            { "title": "JSON" }
        ],
        "format": "password",
        "writeOnly": true
    };
}

/// Whether the field at `path` (dotted, `a.b`, list items as `a[0]`) is, holds or lies within
/// one of the secret fields (`a.b`, `a.*`): an error about it must not show what it read there.
pub(super) fn touches_secret(path: &str, secret_fields: &[String]) -> bool {
    let path: Vec<&str> = path
        .split('.')
        .filter_map(|part| part.split('[').next())
        .filter(|part| !part.is_empty())
        .collect();
    secret_fields.iter().any(|field| {
        let field: Vec<&str> = field.split('.').collect();
        path.iter()
            .zip(&field)
            .all(|(part, secret)| *secret == "*" || part == secret)
    })
}

/// `data` with every value at a secret field replaced as Prefect's server obfuscates it
/// (`********`), whatever its type (the server leaves a JSON object in a `Secret` as it is;
/// here it is masked too). `*` stands for every key at its level.
pub(super) fn obfuscate(data: &mut Map<String, Value>, secret_fields: &[String]) {
    for field in secret_fields {
        let path: Vec<&str> = field.split('.').collect();
        mask(data, &path);
    }
}

fn mask(object: &mut Map<String, Value>, path: &[&str]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let keys: Vec<String> = if *first == "*" {
        object.keys().cloned().collect()
    } else {
        vec![first.to_string()]
    };
    for key in keys {
        match object.get_mut(&key) {
            None | Some(Value::Null) => {}
            Some(value) if rest.is_empty() => *value = Value::String(OBFUSCATED.into()),
            Some(Value::Object(inner)) => mask(inner, rest),
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_and_serialize_as_themselves() {
        let text = SecretStr::new("pa55");
        let json = SecretValue::json(&serde_json::json!({ "password": "pa55" })).unwrap();
        assert_eq!(format!("{text:?} {json:?}"), "[REDACTED] [REDACTED]");
        assert_eq!(serde_json::to_value(&text).unwrap(), "pa55");
        assert_eq!(serde_json::to_value(&json).unwrap()["password"], "pa55");
        let back: SecretValue = serde_json::from_value(serde_json::json!([1, 2])).unwrap();
        assert_eq!(back.expose_json(), serde_json::json!([1, 2]));
        assert_eq!(back.expose_str(), None);
    }

    #[test]
    fn a_secret_reads_as_pythons_secret_get_does() {
        let held_json = SecretValue::string(r#"{"a": 1}"#);
        let map: std::collections::BTreeMap<String, u8> = held_json.expose_as().unwrap();
        assert_eq!(map["a"], 1);
        let plain = SecretValue::string("sk-123");
        assert_eq!(plain.expose_as::<String>().unwrap(), "sk-123");
        let err = plain.expose_as::<u32>().unwrap_err().to_string();
        assert!(err.contains("u32") && !err.contains("sk-123"), "{err}");
    }

    #[test]
    fn secret_fields_are_masked_at_any_depth_and_under_wildcards() {
        let mut data = serde_json::json!({
            "url": "https://hook",
            "headers": { "Authorization": "Bearer x", "X": { "deep": "y" } },
            "inner": { "token": "t", "n": 3 },
            "value": { "user": "u" },
            "none": null,
            "method": "POST",
        });
        let fields: Vec<String> = ["url", "headers.*", "inner.token", "value", "none", "missing.x"]
            .map(String::from)
            .into();
        obfuscate(data.as_object_mut().unwrap(), &fields);
        assert_eq!(
            data,
            serde_json::json!({
                "url": OBFUSCATED,
                "headers": { "Authorization": OBFUSCATED, "X": OBFUSCATED },
                "inner": { "token": OBFUSCATED, "n": 3 },
                "value": OBFUSCATED,
                "none": null,
                "method": "POST",
            })
        );
    }

    #[test]
    fn paths_at_within_or_above_a_secret_touch_it() {
        let fields: Vec<String> = ["url", "headers.*", "inner.token"].map(String::from).into();
        for touching in [
            "url",
            "url[0]",
            "headers",
            "headers.Authorization",
            "inner",
            "inner.token",
            ".",
        ] {
            assert!(touches_secret(touching, &fields), "{touching}");
        }
        for not in ["method", "inner.n", "urls"] {
            assert!(!touches_secret(not, &fields), "{not}");
        }
    }
}
