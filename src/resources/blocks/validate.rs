//! Block data checked against a block schema before it is sent: every required field present,
//! and each field of the JSON type its schema says (`type`, `enum`, `const`, `anyOf` / `oneOf`
//! / `allOf`, `$ref` to the schema's definitions, `items`, nested `properties`). Prefect's
//! server stores block data without checking it; Python's `Block` classes refuse data that
//! does not fit their fields when they load it.
//!
//! Written here rather than taken from a JSON Schema crate: block schemas use this small part
//! of JSON Schema, and an error here must name the field without showing its value (which may
//! be a secret), where validators' messages quote the value they refused.

use serde_json::{Map, Value};

/// How much of the document the data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Extent {
    /// The whole document: required fields must be present.
    Whole,
    /// Fields to merge into the stored ones (nested objects are still whole).
    Partial,
}

/// Refs are followed at most this deep (a schema may refer to itself).
const MAX_DEPTH: usize = 64;

/// Checks `data` against the block schema `fields`; the problem, naming the field, when it
/// does not fit. A field the schema does not list is accepted (Python's blocks accept extra
/// fields), and a field holding another block may be a reference to a saved block document
/// (`{"$ref": {"block_document_id": …}}`).
pub(super) fn check_data(
    fields: &Map<String, Value>,
    data: &Map<String, Value>,
    extent: Extent,
) -> Result<(), String> {
    let definitions = fields.get("definitions").and_then(Value::as_object);
    let block_fields = fields.get("block_schema_references").and_then(Value::as_object);
    let checker = Checker { definitions };
    if extent == Extent::Whole {
        checker.required(fields, data, "")?;
    }
    let properties = fields.get("properties").and_then(Value::as_object);
    for (key, value) in data {
        if let Some(reference) = value.as_object().and_then(|object| object.get("$ref")) {
            if !block_fields.is_some_and(|blocks| blocks.contains_key(key)) {
                return Err(format!(
                    "field `{key}` is a reference to a block document, but the block type has no block field `{key}`"
                ));
            }
            let id = reference.get("block_document_id").and_then(Value::as_str);
            if id.is_none_or(|id| id.parse::<uuid::Uuid>().is_err()) {
                return Err(format!(
                    "field `{key}` is a reference without a block document id; write {{\"$ref\": {{\"block_document_id\": \"<uuid>\"}}}}"
                ));
            }
            continue;
        }
        if let Some(schema) = properties.and_then(|p| p.get(key)) {
            checker.value(schema, value, key, 0)?;
        }
    }
    Ok(())
}

struct Checker<'a> {
    definitions: Option<&'a Map<String, Value>>,
}

impl Checker<'_> {
    fn required(
        &self,
        schema: &Map<String, Value>,
        data: &Map<String, Value>,
        path: &str,
    ) -> Result<(), String> {
        let required = schema.get("required").and_then(Value::as_array);
        for name in required.into_iter().flatten().filter_map(Value::as_str) {
            if !data.contains_key(name) {
                return Err(format!(
                    "field `{}` is missing; the block type requires it",
                    join(path, name)
                ));
            }
        }
        Ok(())
    }

    fn value(&self, schema: &Value, value: &Value, path: &str, depth: usize) -> Result<(), String> {
        let schema = match schema {
            Value::Bool(true) => return Ok(()),
            Value::Bool(false) => return Err(format!("field `{path}` is not allowed")),
            Value::Object(schema) => schema,
            _ => return Ok(()),
        };
        if depth > MAX_DEPTH {
            return Ok(());
        }
        if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
            // An unknown reference (Prefect drops empty definitions such as `JsonValue`)
            // allows anything.
            if let Some(definition) = self.resolve(target) {
                self.value(definition, value, path, depth + 1)?;
            }
        }
        for member in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.value(member, value, path, depth + 1)?;
        }
        for key in ["anyOf", "oneOf"] {
            let Some(members) = schema.get(key).and_then(Value::as_array) else {
                continue;
            };
            let problems: Vec<String> = members
                .iter()
                .filter_map(|member| self.value(member, value, path, depth + 1).err())
                .collect();
            if members.is_empty() || problems.len() < members.len() {
                continue;
            }
            // A form the value got into (its type fitted, a field inside did not) says most.
            let own = format!("field `{path}` ");
            if let Some(inside) = problems.iter().find(|p| !p.starts_with(&own)) {
                return Err(inside.clone());
            }
            if let [only] = problems.as_slice() {
                return Err(only.clone());
            }
            let forms: Vec<String> = members.iter().map(describe).collect();
            return Err(format!(
                "field `{path}` fits none of its {} accepted forms ({}), it is {}",
                members.len(),
                forms.join(", "),
                kind(value)
            ));
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            let shown: Vec<String> = allowed.iter().map(Value::to_string).collect();
            return Err(format!("field `{path}` must be one of {}", shown.join(", ")));
        }
        if let Some(constant) = schema.get("const")
            && constant != value
        {
            return Err(format!("field `{path}` must be {constant}"));
        }
        if let Some(types) = schema.get("type") {
            let types: Vec<&str> = match types {
                Value::String(one) => vec![one.as_str()],
                Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !types.is_empty() && !types.iter().any(|t| is_type(value, t)) {
                return Err(format!(
                    "field `{path}` must be of type {}, not {}",
                    types.join(" or "),
                    kind(value)
                ));
            }
        }
        match value {
            Value::Object(object) => {
                self.required(schema, object, path)?;
                let properties = schema.get("properties").and_then(Value::as_object);
                let others = schema.get("additionalProperties");
                for (key, item) in object {
                    if let Some(sub) = properties.and_then(|p| p.get(key)).or(others) {
                        self.value(sub, item, &join(path, key), depth + 1)?;
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items").filter(|s| s.is_object()) {
                    for (i, item) in items.iter().enumerate() {
                        self.value(item_schema, item, &format!("{path}[{i}]"), depth + 1)?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn resolve(&self, target: &str) -> Option<&Value> {
        let name = target.strip_prefix("#/definitions/")?;
        self.definitions?.get(name)
    }
}

/// A short name of what a schema accepts, for messages.
fn describe(schema: &Value) -> String {
    match schema.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => match schema.get("$ref").and_then(Value::as_str) {
            Some(target) => target.trim_start_matches("#/definitions/").to_string(),
            None if schema.get("enum").is_some() => "one of its values".into(),
            None => "any value".into(),
        },
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Whether `value` is of the JSON Schema type `name` (a whole float counts as an integer).
fn is_type(value: &Value, name: &str) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value
            .as_number()
            .is_some_and(|n| n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => true,
    }
}

/// What kind of JSON value this is, never the value itself.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number with a fraction",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Prefect 3.8.8's stored schema of its `webhook` block (`GET /block_schemas/filter`).
    fn webhook() -> Map<String, Value> {
        let schema = json!({
            "block_type_slug": "webhook",
            "properties": {
                "method": { "default": "POST", "enum": ["GET", "POST", "PUT", "PATCH", "DELETE"], "title": "Method", "type": "string" },
                "url": { "format": "password", "title": "Webhook URL", "type": "string", "writeOnly": true },
                "headers": { "title": "Webhook Headers", "type": "object" },
                "allow_private_urls": { "default": true, "title": "Allow Private Urls", "type": "boolean" },
                "verify": { "default": true, "title": "Verify", "type": "boolean" }
            },
            "required": ["url"],
            "secret_fields": ["url", "headers.*"],
            "title": "Webhook",
            "type": "object",
            "block_schema_references": {}
        });
        schema.as_object().unwrap().clone()
    }

    fn check(schema: &Map<String, Value>, data: Value, extent: Extent) -> Result<(), String> {
        check_data(schema, data.as_object().unwrap(), extent)
    }

    #[test]
    fn data_that_fits_is_accepted_with_extra_fields() {
        let data = json!({ "url": "https://h", "method": "PUT", "headers": {"A": "b"}, "extra": [1] });
        check(&webhook(), data, Extent::Whole).unwrap();
        check(&webhook(), json!({ "verify": false }), Extent::Partial).unwrap();
    }

    #[test]
    fn problems_name_the_field_and_never_show_its_value() {
        for (data, extent, expected) in [
            (
                json!({ "method": "POST" }),
                Extent::Whole,
                "field `url` is missing",
            ),
            (
                json!({ "url": 5 }),
                Extent::Whole,
                "field `url` must be of type string, not an integer",
            ),
            (
                json!({ "url": "u", "method": "YELL" }),
                Extent::Whole,
                "field `method` must be one of",
            ),
            (
                json!({ "verify": "yes-secret" }),
                Extent::Partial,
                "field `verify` must be of type boolean, not a string",
            ),
        ] {
            let problem = check(&webhook(), data, extent).unwrap_err();
            assert!(problem.starts_with(expected), "{problem}");
            assert!(
                !problem.contains("yes-secret") && !problem.contains("YELL"),
                "{problem}"
            );
        }
    }

    #[test]
    fn nested_objects_lists_unions_and_references_are_followed() {
        let schema = json!({
            "properties": {
                "window": { "anyOf": [{ "$ref": "#/definitions/Window" }, { "type": "null" }] },
                "ports": { "type": "array", "items": { "type": "integer" } },
                "secret": { "anyOf": [{ "type": "string" }, { "$ref": "#/definitions/JsonValue" }] },
                "inner": { "$ref": "#/definitions/Inner" }
            },
            "required": ["inner"],
            "block_schema_references": { "inner": { "block_type_slug": "inner", "block_schema_checksum": "sha256:0" } },
            "definitions": {
                "Window": { "type": "object", "properties": { "start": { "type": "integer" } }, "required": ["start"] },
                "Inner": { "type": "object", "properties": { "token": { "type": "string" } }, "required": ["token"], "block_type_slug": "inner" }
            }
        });
        let schema = schema.as_object().unwrap().clone();
        let id = uuid::Uuid::new_v4().to_string();
        check(
            &schema,
            json!({ "inner": { "token": "t" }, "window": null, "ports": [1, 2.0], "secret": {"a": [1]} }),
            Extent::Whole,
        )
        .unwrap();
        check(
            &schema,
            json!({ "inner": { "$ref": { "block_document_id": id } }, "window": { "start": 1 } }),
            Extent::Whole,
        )
        .unwrap();
        for (data, expected) in [
            (json!({ "inner": {} }), "field `inner.token` is missing"),
            (
                json!({ "inner": { "token": "t" }, "ports": [1, "x"] }),
                "field `ports[1]` must be of type integer",
            ),
            (
                json!({ "inner": { "token": "t" }, "window": { "start": "s" } }),
                "field `window.start` must be of type integer",
            ),
            (
                json!({ "inner": { "token": "t" }, "window": 3 }),
                "field `window` fits none of its 2 accepted forms (Window, null), it is an integer",
            ),
            (
                json!({ "inner": { "$ref": {} } }),
                "field `inner` is a reference without a block document id",
            ),
            (
                json!({ "inner": { "token": "t" }, "ports": { "$ref": { "block_document_id": id } } }),
                "field `ports` is a reference to a block document",
            ),
        ] {
            let problem = check(&schema, data, Extent::Whole).unwrap_err();
            assert!(problem.starts_with(expected), "{problem}");
        }
    }
}
