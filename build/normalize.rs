//! Normalization of Prefect's OpenAPI 3.1 document into the OpenAPI 3.0 form that progenitor
//! (through the `openapiv3` crate and typify) accepts, and into types that decode what the real
//! server sends.
//!
//! Every step is a named function over `serde_json::Value` with its own unit tests. The build
//! script calls [`normalize`]; a step that meets something it cannot handle returns a
//! [`NormalizeError`] naming the operation or schema, so the build fails with a message rather
//! than a panic.
//!
//! This file is compiled twice: by `build.rs` (as `#[path] mod normalize`) and by
//! `tests/schema_normalization.rs`, which runs the unit tests below.

use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A part of the document that no normalization step knows how to handle.
#[derive(Debug, Clone, PartialEq)]
pub struct NormalizeError {
    /// Which step failed.
    pub step: &'static str,
    /// Where in the document (a JSON-pointer-like path, an operation id or a schema name).
    pub location: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for NormalizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "openapi.yaml normalization step `{}` cannot handle {}: {}",
            self.step, self.location, self.message
        )
    }
}

impl std::error::Error for NormalizeError {}

fn fail(step: &'static str, location: impl Into<String>, message: impl Into<String>) -> NormalizeError {
    NormalizeError {
        step,
        location: location.into(),
        message: message.into(),
    }
}

/// A visitor of schema objects, given each schema's location.
pub type SchemaVisitor<'a> = dyn FnMut(&mut Map<String, Value>, &[String]) + 'a;
/// A visitor of operations, given each operation's path and method.
pub type OperationVisitor<'a> = dyn FnMut(&str, &str, &mut Map<String, Value>) + 'a;

/// HTTP methods that carry operations in an OpenAPI path item.
pub const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The header every Prefect operation documents; the client sets it once instead.
pub const API_VERSION_HEADER: &str = "x-prefect-api-version";

/// Runs every step, in order, over the whole document.
pub fn normalize(doc: &mut Value) -> Result<(), NormalizeError> {
    check_document(doc)?;
    downgrade_openapi_version(doc);
    let renamed = rename_operation_ids(doc)?;
    rename_body_schemas(doc, &renamed)?;
    drop_api_version_header(doc);
    declare_success_as_any_2xx(doc)?;
    for_each_schema(doc, &mut |schema, _| {
        drop_unsupported_keywords(schema);
        exclusive_bounds_to_boolean(schema);
        prefix_items_to_items(schema);
        type_lists_to_nullable(schema);
        null_unions_to_nullable(schema);
        dedupe_union_members(schema);
        durations_as_seconds(schema);
        unconstrained_unions_to_any(schema);
    });
    discriminated_unions_to_one_of(doc);
    for_each_schema(doc, &mut |schema, _| remaining_any_of_to_one_of(schema));
    header_params_not_nullable(doc);
    string_union_params_to_string(doc)?;
    const_to_enum(doc);
    title_properties_by_location(doc);
    fence_indented_descriptions(doc);
    Ok(())
}

/// Fails early, naming what is missing, when the input is not an OpenAPI document with paths.
pub fn check_document(doc: &Value) -> Result<(), NormalizeError> {
    let version = doc.get("openapi").and_then(Value::as_str).unwrap_or("");
    if !version.starts_with("3.") {
        return Err(fail(
            "check_document",
            "/openapi",
            format!("expected an OpenAPI 3.x document, found version {version:?}"),
        ));
    }
    if !doc.get("paths").is_some_and(Value::is_object) {
        return Err(fail(
            "check_document",
            "/paths",
            "the document has no `paths` object",
        ));
    }
    Ok(())
}

/// Step: declare the document as OpenAPI 3.0.3, the version `openapiv3` parses.
pub fn downgrade_openapi_version(doc: &mut Value) {
    doc["openapi"] = json!("3.0.3");
}

/// Visits every operation object with its path and method.
fn for_each_operation(doc: &mut Value, f: &mut OperationVisitor<'_>) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            if let Some(op) = op.as_object_mut() {
                f(path, method, op);
            }
        }
    }
}

/// The FastAPI route name inside a generated operationId
/// (`{route name}{path with non-word characters as _}_{method}`).
pub fn route_name(operation_id: &str, path: &str, method: &str) -> String {
    let suffix: String = path
        .chars()
        .map(|c| if c.is_alphanumeric() || c == '_' { c } else { '_' })
        .collect::<String>()
        + "_"
        + method;
    match operation_id.strip_suffix(&suffix) {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => operation_id.to_string(),
    }
}

/// The first literal segment of a path (`/work_pools/{name}/queues` → `work_pools`).
fn first_segment(path: &str) -> &str {
    path.trim_start_matches('/').split('/').next().unwrap_or("")
}

/// Step: replace FastAPI's mangled operationIds with the route's function name
/// (`create_concurrency_limit_v2_v2_concurrency_limits__post` → `create_concurrency_limit_v2`).
///
/// Where two routes share a function name, a route whose first path segment already names it
/// (`/work_queues/` for `create_work_queue`) keeps it and the others get `_in_{segment}`
/// (`create_work_queue_in_work_pools`). Names that still collide fail the build.
///
/// Returns the new name of each old operationId.
pub fn rename_operation_ids(doc: &mut Value) -> Result<BTreeMap<String, String>, NormalizeError> {
    let mut routes: Vec<(String, String, String)> = Vec::new(); // (path, method, name)
    let mut old_ids: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut missing = None;
    for_each_operation(
        doc,
        &mut |path, method, op| match op.get("operationId").and_then(Value::as_str) {
            Some(id) => {
                old_ids.insert((path.into(), method.into()), id.into());
                routes.push((path.into(), method.into(), route_name(id, path, method)));
            }
            None => missing = Some(format!("{} {path}", method.to_uppercase())),
        },
    );
    if let Some(op) = missing {
        return Err(fail(
            "rename_operation_ids",
            op,
            "the operation has no operationId",
        ));
    }
    let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, (_, _, name)) in routes.iter().enumerate() {
        by_name.entry(name).or_default().push(i);
    }
    let mut renamed: BTreeMap<(String, String), String> = BTreeMap::new();
    for (name, indexes) in &by_name {
        let names_it = |i: &usize| {
            let segment = first_segment(&routes[*i].0);
            name.contains(segment.trim_end_matches('s'))
        };
        let keepers = if indexes.len() > 1 {
            indexes.iter().filter(|i| names_it(i)).count()
        } else {
            1
        };
        for i in indexes {
            let (path, method, _) = &routes[*i];
            let new = if indexes.len() == 1 || (keepers == 1 && names_it(i)) {
                name.to_string()
            } else {
                format!("{name}_in_{}", first_segment(path))
            };
            renamed.insert((path.clone(), method.clone()), new);
        }
    }
    let mut seen: BTreeMap<&String, &(String, String)> = BTreeMap::new();
    for (key, name) in &renamed {
        if let Some(other) = seen.insert(name, key) {
            return Err(fail(
                "rename_operation_ids",
                format!(
                    "{} {} and {} {}",
                    other.1.to_uppercase(),
                    other.0,
                    key.1.to_uppercase(),
                    key.0
                ),
                format!("both operations would be named `{name}`; extend the rule in build/normalize.rs"),
            ));
        }
    }
    for_each_operation(doc, &mut |path, method, op| {
        if let Some(name) = renamed.get(&(path.to_string(), method.to_string())) {
            op.insert("operationId".into(), json!(name));
        }
    });
    Ok(renamed
        .into_iter()
        .filter_map(|(key, new)| old_ids.remove(&key).map(|old| (old, new)))
        .collect())
}

/// Replaces every `$ref` to `from` in the document with `to`.
fn replace_refs(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "$ref" && child.as_str() == Some(from) {
                    *child = json!(to);
                } else {
                    replace_refs(child, from, to);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|child| replace_refs(child, from, to)),
        _ => {}
    }
}

/// Step: FastAPI names an operation's form of several body fields `Body_{operationId}`
/// (`Body_bulk_increment_active_slots_with_lease_v2_concurrency_limits_increment_with_lease_post`);
/// rename each to `{operation}_body` (`bulk_increment_active_slots_with_lease_body`, generated as
/// `BulkIncrementActiveSlotsWithLeaseBody`) and rewrite the references.
pub fn rename_body_schemas(
    doc: &mut Value,
    renamed: &BTreeMap<String, String>,
) -> Result<(), NormalizeError> {
    let Some(schemas) = doc.pointer("/components/schemas").and_then(Value::as_object) else {
        return Ok(());
    };
    let mut moves = Vec::new();
    for name in schemas.keys() {
        let Some(old_id) = name.strip_prefix("Body_") else {
            continue;
        };
        if let Some(operation) = renamed.get(old_id) {
            let new = format!("{operation}_body");
            if schemas.contains_key(&new) {
                return Err(fail(
                    "rename_body_schemas",
                    format!("schema `{name}`"),
                    format!("`{new}` exists already"),
                ));
            }
            moves.push((name.clone(), new));
        }
    }
    for (old, new) in moves {
        let schemas = doc
            .pointer_mut("/components/schemas")
            .and_then(Value::as_object_mut)
            .expect("checked above");
        let mut schema = schemas.remove(&old).expect("listed above");
        schema["title"] = json!(new);
        schemas.insert(new.clone(), schema);
        replace_refs(
            doc,
            &format!("#/components/schemas/{old}"),
            &format!("#/components/schemas/{new}"),
        );
    }
    Ok(())
}

/// Step: remove the `x-prefect-api-version` header parameter every operation documents; the
/// client sends `X-PREFECT-API-VERSION` on every request itself.
pub fn drop_api_version_header(doc: &mut Value) {
    for_each_operation(doc, &mut |_, _, op| {
        if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
            params.retain(|p| {
                !(p.get("in") == Some(&json!("header"))
                    && p.get("name")
                        .and_then(Value::as_str)
                        .map(str::to_ascii_lowercase)
                        .as_deref()
                        == Some(API_VERSION_HEADER))
            });
        }
    });
}

/// Step: keep one success response per operation, declared as `2XX`, and drop the documented
/// error responses.
///
/// The real server answers 201 where the document says 200 and sends error bodies of other
/// shapes than documented (its 422 is not FastAPI's `HTTPValidationError`); with only `2XX`
/// declared, every 2xx decodes as the documented type and every error reaches the hand-written
/// error decoding as the raw response.
pub fn declare_success_as_any_2xx(doc: &mut Value) -> Result<(), NormalizeError> {
    let mut error = None;
    for_each_operation(doc, &mut |_, _, op| {
        let id = op
            .get("operationId")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
            error = Some(fail(
                "declare_success_as_any_2xx",
                id,
                "the operation has no responses",
            ));
            return;
        };
        let success: Vec<String> = responses.keys().filter(|k| k.starts_with('2')).cloned().collect();
        match success.as_slice() {
            [one] => {
                let response = responses.remove(one).expect("key listed above");
                responses.clear();
                responses.insert("2XX".into(), response);
            }
            [] => {
                error = Some(fail(
                    "declare_success_as_any_2xx",
                    id,
                    "no 2xx response is documented",
                ))
            }
            _ => {
                error = Some(fail(
                    "declare_success_as_any_2xx",
                    id,
                    format!(
                        "several success responses ({}) are documented",
                        success.join(", ")
                    ),
                ))
            }
        }
    });
    error.map_or(Ok(()), Err)
}

/// Visits every schema object in the document, children before parents, with its location.
pub fn for_each_schema(doc: &mut Value, f: &mut SchemaVisitor<'_>) {
    let mut location = Vec::new();
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for (name, schema) in schemas.iter_mut() {
            location.push(name.clone());
            walk_schema(schema, &mut location, f);
            location.pop();
        }
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            let id = op
                .get("operationId")
                .and_then(Value::as_str)
                .unwrap_or(path)
                .to_string();
            location.push(id);
            if method == "parameters" {
                walk_parameters(op, &mut location, f);
            } else if METHODS.contains(&method.as_str()) {
                if let Some(params) = op.get_mut("parameters") {
                    walk_parameters(params, &mut location, f);
                }
                if let Some(content) = op.pointer_mut("/requestBody/content") {
                    walk_content(content, "body", &mut location, f);
                }
                if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) {
                    for (code, response) in responses.iter_mut() {
                        if let Some(content) = response.get_mut("content") {
                            walk_content(content, &format!("response {code}"), &mut location, f);
                        }
                    }
                }
            }
            location.pop();
        }
    }
}

fn walk_parameters(params: &mut Value, location: &mut Vec<String>, f: &mut SchemaVisitor<'_>) {
    for param in params.as_array_mut().into_iter().flatten() {
        let name = param
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("parameter")
            .to_string();
        if let Some(schema) = param.get_mut("schema") {
            location.push(name);
            walk_schema(schema, location, f);
            location.pop();
        }
    }
}

fn walk_content(content: &mut Value, label: &str, location: &mut Vec<String>, f: &mut SchemaVisitor<'_>) {
    for (_, media) in content.as_object_mut().into_iter().flatten() {
        if let Some(schema) = media.get_mut("schema") {
            location.push(label.to_string());
            walk_schema(schema, location, f);
            location.pop();
        }
    }
}

/// Keywords whose value is one schema.
const SCHEMA_KEYWORDS: [&str; 4] = ["items", "additionalProperties", "not", "contains"];
/// Keywords whose value is a list of schemas.
const SCHEMA_LIST_KEYWORDS: [&str; 4] = ["anyOf", "oneOf", "allOf", "prefixItems"];
/// Keywords whose value maps names to schemas.
const SCHEMA_MAP_KEYWORDS: [&str; 3] = ["properties", "patternProperties", "$defs"];

fn walk_schema(schema: &mut Value, location: &mut Vec<String>, f: &mut SchemaVisitor<'_>) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    for keyword in SCHEMA_KEYWORDS {
        if let Some(child) = object.get_mut(keyword) {
            walk_schema(child, location, f);
        }
    }
    for keyword in SCHEMA_LIST_KEYWORDS {
        for child in object
            .get_mut(keyword)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            walk_schema(child, location, f);
        }
    }
    for keyword in SCHEMA_MAP_KEYWORDS {
        for (name, child) in object
            .get_mut(keyword)
            .and_then(Value::as_object_mut)
            .into_iter()
            .flatten()
        {
            location.push(name.clone());
            walk_schema(child, location, f);
            location.pop();
        }
    }
    f(object, location);
}

/// Step: drop keywords OpenAPI 3.0 does not have and that carry no type information:
/// `examples` (3.1 lists), `propertyNames`, `contentMediaType`, `$schema`, and Prefect's
/// non-standard `supported_environment_variables`.
pub fn drop_unsupported_keywords(schema: &mut Map<String, Value>) {
    for keyword in [
        "examples",
        "propertyNames",
        "contentMediaType",
        "$schema",
        "supported_environment_variables",
    ] {
        schema.remove(keyword);
    }
}

/// Step: numeric `exclusiveMinimum: n` / `exclusiveMaximum: n` (3.1) → `minimum: n` +
/// `exclusiveMinimum: true` (3.0).
pub fn exclusive_bounds_to_boolean(schema: &mut Map<String, Value>) {
    for (exclusive, bound) in [("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")] {
        if let Some(n) = schema.get(exclusive).filter(|v| v.is_number()).cloned() {
            schema.insert(bound.into(), n);
            schema.insert(exclusive.into(), json!(true));
        }
    }
}

/// Step: tuple `prefixItems` (3.1) → one `items` schema: the member type when all members are
/// the same, otherwise any JSON value.
pub fn prefix_items_to_items(schema: &mut Map<String, Value>) {
    let Some(Value::Array(members)) = schema.remove("prefixItems") else {
        return;
    };
    let items = match members.first() {
        Some(first) if members.iter().all(|m| m == first) => first.clone(),
        _ => json!({}),
    };
    schema.insert("items".into(), items);
    schema.remove("maxItems");
    schema.remove("minItems");
}

/// True for a schema that only admits `null`.
pub fn is_null_schema(schema: &Value) -> bool {
    schema.get("type") == Some(&json!("null"))
        || schema.get("const") == Some(&Value::Null)
        || schema.get("enum") == Some(&json!([null]))
}

/// Step: `type: [T, "null"]` (3.1) → `type: T` + `nullable: true`.
pub fn type_lists_to_nullable(schema: &mut Map<String, Value>) {
    let Some(Value::Array(types)) = schema.get("type").cloned() else {
        return;
    };
    let others: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
    if others.len() < types.len() {
        schema.insert("nullable".into(), json!(true));
    }
    match others.as_slice() {
        [one] => {
            schema.insert("type".into(), one.clone());
        }
        [] => {
            schema.remove("type");
        }
        _ => {
            schema.remove("type");
            let members: Vec<Value> = others.iter().map(|t| json!({ "type": t })).collect();
            schema.insert("anyOf".into(), Value::Array(members));
        }
    }
}

/// Step: `anyOf`/`oneOf` with a `null` member → the other member(s) with `nullable: true`.
///
/// A single `$ref` member becomes `allOf: [$ref]` (3.0 ignores siblings of `$ref`); a single
/// inline member is merged into the schema, whose own title, description and default win.
pub fn null_unions_to_nullable(schema: &mut Map<String, Value>) {
    for keyword in ["anyOf", "oneOf"] {
        let Some(Value::Array(members)) = schema.get(keyword) else {
            continue;
        };
        if !members.iter().any(is_null_schema) {
            continue;
        }
        let others: Vec<Value> = members.iter().filter(|m| !is_null_schema(m)).cloned().collect();
        schema.remove(keyword);
        schema.insert("nullable".into(), json!(true));
        match others.as_slice() {
            [] => {}
            [one] if one.get("$ref").is_some() => {
                schema.insert("allOf".into(), json!([one]));
            }
            [Value::Object(one)] => {
                for (key, value) in one {
                    if key == "nullable" {
                        continue;
                    }
                    schema.entry(key.clone()).or_insert_with(|| value.clone());
                }
            }
            _ => {
                schema.insert(keyword.into(), Value::Array(others));
            }
        }
    }
}

/// Step: drop repeated members of `anyOf`/`oneOf`/`allOf`.
pub fn dedupe_union_members(schema: &mut Map<String, Value>) {
    for keyword in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(members)) = schema.get_mut(keyword) {
            let mut unique: Vec<Value> = Vec::with_capacity(members.len());
            for m in members.drain(..) {
                if !unique.contains(&m) {
                    unique.push(m);
                }
            }
            *members = unique;
        }
    }
}

/// Step: `format: duration` strings → numbers of seconds. Prefect's server sends every
/// `timedelta` as float seconds (`"within": 60.0`) although the document says string, and it
/// accepts seconds on input. An ISO 8601 default (`PT1H`) becomes its seconds (`3600.0`).
pub fn durations_as_seconds(schema: &mut Map<String, Value>) {
    if schema.get("format").and_then(Value::as_str) == Some("duration") {
        schema.remove("format");
        schema.remove("pattern");
        schema.insert("type".into(), json!("number"));
        if let Some(Value::String(text)) = schema.get("default") {
            match iso8601_seconds(text) {
                Some(seconds) => schema.insert("default".into(), json!(seconds)),
                None => schema.remove("default"),
            };
        }
    }
    // A map of durations (children are converted first) with an ISO 8601 default map.
    let map_of_numbers =
        schema.get("additionalProperties").and_then(|a| a.get("type")) == Some(&json!("number"));
    if let (true, Some(Value::Object(default))) = (map_of_numbers, schema.get_mut("default")) {
        for value in default.values_mut() {
            if let Some(seconds) = value.as_str().and_then(iso8601_seconds) {
                *value = json!(seconds);
            }
        }
    }
}

/// Seconds in an ISO 8601 duration of days, hours, minutes and seconds (`P7D`, `PT1H30M`).
pub fn iso8601_seconds(text: &str) -> Option<f64> {
    let rest = text.strip_prefix('P')?;
    let (days, time) = rest.split_once('T').unwrap_or((rest, ""));
    let mut total = 0.0;
    for (part, units) in [
        (days, &[('D', 86_400.0)][..]),
        (time, &[('H', 3_600.0), ('M', 60.0), ('S', 1.0)][..]),
    ] {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
            } else {
                let factor = units.iter().find(|(u, _)| *u == c)?.1;
                total += number.parse::<f64>().ok()? * factor;
                number.clear();
            }
        }
        if !number.is_empty() {
            return None;
        }
    }
    Some(total)
}

/// Keywords that only annotate a schema and do not constrain values.
const ANNOTATIONS: [&str; 5] = ["title", "description", "default", "deprecated", "nullable"];

/// True for a schema that admits any value (`{}` or only annotations).
pub fn is_unconstrained(schema: &Value) -> bool {
    schema
        .as_object()
        .is_some_and(|m| m.keys().all(|k| ANNOTATIONS.contains(&k.as_str())))
}

/// Step: a union with a member that admits anything (`anyOf: [{type: object}, {}]`) admits
/// anything: drop the union, so the value is any JSON value instead of a struct of flattened
/// optional members that rejects strings.
pub fn unconstrained_unions_to_any(schema: &mut Map<String, Value>) {
    for keyword in ["anyOf", "oneOf"] {
        if let Some(Value::Array(members)) = schema.get(keyword)
            && members.iter().any(is_unconstrained)
        {
            schema.remove(keyword);
        }
    }
}

/// Step: every `anyOf` left → `oneOf`. typify turns `anyOf` into a struct of flattened optional
/// members, which fails or half-decodes real values (`require: "all" | 3`); as `oneOf` it is an
/// enum whose first matching member decodes. A `default` goes: `oneOf` demands exactly one
/// matching member, which a default such as `0` (integer and number) breaks.
pub fn remaining_any_of_to_one_of(schema: &mut Map<String, Value>) {
    if let Some(members) = schema.remove("anyOf") {
        schema.insert("oneOf".into(), members);
        schema.remove("default");
    }
}

/// The single value a property admits through `const` or a one-value `enum`.
fn single_value(property: &Value) -> Option<&Value> {
    property.get("const").or_else(|| match property.get("enum") {
        Some(Value::Array(values)) if values.len() == 1 => values.first(),
        _ => None,
    })
}

/// The name of the property shared by every member, each with its own constant value.
fn common_discriminator(members: &[&Value]) -> Option<String> {
    let first = members.first()?.get("properties")?.as_object()?;
    'candidates: for name in first.keys() {
        let mut values = BTreeSet::new();
        for member in members {
            let Some(value) = member
                .pointer(&format!("/properties/{name}"))
                .and_then(single_value)
            else {
                continue 'candidates;
            };
            if !values.insert(value.to_string()) {
                continue 'candidates;
            }
        }
        return Some(name.clone());
    }
    None
}

/// Step: an `anyOf` of `$ref`s to object schemas that all carry the same constant-valued
/// property (`type` on automation triggers and actions) → `oneOf`.
///
/// As `anyOf`, typify emits a struct of optional flattened members that can take a body as the
/// wrong member; as `oneOf` it emits an enum, and because [`const_to_enum`] gives each member's
/// discriminator a one-value type, only the member whose `type` matches decodes.
pub fn discriminated_unions_to_one_of(doc: &mut Value) {
    let components = doc.pointer("/components/schemas").cloned().unwrap_or(Value::Null);
    let resolve = |member: &Value| -> Option<Value> {
        let reference = member.get("$ref")?.as_str()?;
        let name = reference.strip_prefix("#/components/schemas/")?;
        components.get(name).cloned()
    };
    for_each_schema(doc, &mut |schema, _| {
        let Some(Value::Array(members)) = schema.get("anyOf") else {
            return;
        };
        if members.len() < 2 {
            return;
        }
        let resolved: Option<Vec<Value>> = members.iter().map(resolve).collect();
        let Some(resolved) = resolved else {
            return;
        };
        let refs: Vec<&Value> = resolved.iter().collect();
        if common_discriminator(&refs).is_some() {
            let members = schema.remove("anyOf").expect("checked above");
            schema.insert("oneOf".into(), members);
        }
    });
}

/// Step: header parameters must not be nullable (progenitor would generate
/// `Option<T>.to_string()`); an absent optional header already means "none".
pub fn header_params_not_nullable(doc: &mut Value) {
    for_each_operation(doc, &mut |_, _, op| {
        for param in op
            .get_mut("parameters")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if param.get("in") != Some(&json!("header")) {
                continue;
            }
            if let Some(schema) = param.get_mut("schema").and_then(Value::as_object_mut) {
                schema.remove("nullable");
            }
        }
    });
}

/// Step: a path or query parameter whose schema is an `anyOf` of strings (a UUID or a name,
/// as in `/v2/concurrency_limits/{id_or_name}`) → a plain string; progenitor cannot take a
/// union as a parameter.
pub fn string_union_params_to_string(doc: &mut Value) -> Result<(), NormalizeError> {
    let mut error = None;
    for_each_operation(doc, &mut |_, _, op| {
        let id = op
            .get("operationId")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        for param in op
            .get_mut("parameters")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let name = param
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string();
            let Some(schema) = param.get_mut("schema").and_then(Value::as_object_mut) else {
                continue;
            };
            let Some(Value::Array(members)) = schema.get("anyOf").or_else(|| schema.get("oneOf")) else {
                continue;
            };
            if members.iter().all(|m| m.get("type") == Some(&json!("string"))) {
                schema.remove("anyOf");
                schema.remove("oneOf");
                schema.insert("type".into(), json!("string"));
            } else {
                error = Some(fail(
                    "string_union_params_to_string",
                    format!("parameter `{name}` of operation `{id}`"),
                    "a parameter is a union of non-string types; progenitor cannot generate it",
                ));
            }
        }
    });
    error.map_or(Ok(()), Err)
}

/// The title given to a constant converted to an enum: its location in words
/// (`CallWebhook` + `type` → `CallWebhook type`), unique across the document.
fn const_title(location: &[String], taken: &mut BTreeSet<String>) -> String {
    let base = location.join(" ");
    let mut title = base.clone();
    let mut n = 2;
    while !taken.insert(title.clone()) {
        title = format!("{base} {n}");
        n += 1;
    }
    title
}

/// Step: `const: v` (3.1) → `enum: [v]`, without the `default` typify rejects beside it, and
/// with a unique title from the schema's location so the generated types do not collide.
pub fn const_to_enum(doc: &mut Value) {
    let mut taken = BTreeSet::new();
    for_each_schema(doc, &mut |schema, location| {
        let Some(value) = schema.remove("const") else {
            return;
        };
        schema.insert("enum".into(), json!([value]));
        schema.remove("default");
        schema.insert("title".into(), json!(const_title(location, &mut taken)));
    });
}

/// Wraps each run of lines indented by four or more spaces that follows a blank line (a
/// Markdown code block) in a ```` ```text ```` fence, so rustdoc renders it as text instead of
/// compiling it as a Rust doctest.
pub fn fence_indented_text(text: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut in_block = false;
    let mut previous_blank = true;
    for line in text.lines() {
        let indented = line.starts_with("    ") && !line.trim().is_empty();
        if indented && !in_block && previous_blank {
            out.push("```text".into());
            in_block = true;
        } else if in_block && !indented && !line.trim().is_empty() {
            close_fence(&mut out);
            in_block = false;
        }
        out.push(if in_block {
            line.trim_start().to_string()
        } else {
            line.to_string()
        });
        previous_blank = line.trim().is_empty();
    }
    if in_block {
        close_fence(&mut out);
        while out.last().is_some_and(|l| l.trim().is_empty()) {
            out.pop();
        }
    }
    out.join("\n")
}

/// Closes a fence before the blank lines that ended the block.
fn close_fence(out: &mut Vec<String>) {
    let mut blanks = 0;
    while out.last().is_some_and(|l| l.trim().is_empty()) {
        out.pop();
        blanks += 1;
    }
    out.push("```".into());
    out.extend(std::iter::repeat_n(String::new(), blanks));
}

/// Step: fence indented blocks in operation, parameter and schema descriptions (see
/// [`fence_indented_text`]); progenitor copies descriptions into doc comments.
pub fn fence_indented_descriptions(doc: &mut Value) {
    let fence = |holder: &mut Map<String, Value>| {
        if let Some(Value::String(text)) = holder.get("description")
            && text.lines().any(|l| l.starts_with("    "))
        {
            let fenced = fence_indented_text(text);
            holder.insert("description".into(), json!(fenced));
        }
    };
    for_each_operation(doc, &mut |_, _, op| {
        fence(op);
        for param in op
            .get_mut("parameters")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(param) = param.as_object_mut() {
                fence(param);
            }
        }
    });
    for_each_schema(doc, &mut |schema, _| fence(schema));
}

/// FastAPI's title for a property: its words capitalized (`actions_on_trigger` →
/// `Actions On Trigger`).
pub fn default_title(property: &str) -> String {
    property
        .split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Step: a property schema of a component that carries FastAPI's default title (`Name`,
/// `Actions`) is titled by its location instead (`WorkPool name`, `Automation actions`), so the
/// types typify makes for it (pattern newtypes, unions, item enums) get names that say whose
/// they are (`WorkPoolName`, `AutomationActionsItem`) instead of colliding generic ones.
pub fn title_properties_by_location(doc: &mut Value) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (component, schema) in schemas.iter_mut() {
        let mut location = vec![component.clone()];
        walk_schema(schema, &mut location, &mut |s, loc| {
            let (Some(property), true) = (loc.last(), loc.len() > 1) else {
                return;
            };
            if s.get("title").and_then(Value::as_str) == Some(default_title(property).as_str()) {
                s.insert("title".into(), json!(loc.join(" ")));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(v: Value) -> Map<String, Value> {
        v.as_object().expect("test schema is an object").clone()
    }

    fn doc_with(paths: Value) -> Value {
        json!({ "openapi": "3.1.0", "info": { "title": "t", "version": "1" }, "paths": paths })
    }

    #[test]
    fn check_document_rejects_other_formats() {
        let err = check_document(&json!({ "swagger": "2.0", "paths": {} })).unwrap_err();
        assert_eq!(err.step, "check_document");
        assert!(err.to_string().contains("OpenAPI 3.x"), "{err}");
        assert!(
            check_document(&json!({ "openapi": "3.1.0" }))
                .unwrap_err()
                .message
                .contains("paths")
        );
        assert!(check_document(&doc_with(json!({}))).is_ok());
    }

    #[test]
    fn downgrade_sets_3_0() {
        let mut doc = doc_with(json!({}));
        downgrade_openapi_version(&mut doc);
        assert_eq!(doc["openapi"], "3.0.3");
    }

    #[test]
    fn route_name_strips_fastapi_suffix() {
        assert_eq!(
            route_name(
                "create_concurrency_limit_v2_v2_concurrency_limits__post",
                "/v2/concurrency_limits/",
                "post"
            ),
            "create_concurrency_limit_v2"
        );
        assert_eq!(
            route_name("read_flow_run_flow_runs__id__get", "/flow_runs/{id}", "get"),
            "read_flow_run"
        );
        // Not FastAPI's shape: kept as it is.
        assert_eq!(route_name("custom", "/x", "get"), "custom");
    }

    #[test]
    fn rename_operation_ids_disambiguates_shared_route_names() {
        let mut doc = doc_with(json!({
            "/work_queues/": { "post": { "operationId": "create_work_queue_work_queues__post" } },
            "/work_pools/{work_pool_name}/queues": {
                "post": { "operationId": "create_work_queue_work_pools__work_pool_name__queues_post" }
            },
            "/flows/": { "post": { "operationId": "create_flow_flows__post" } },
        }));
        rename_operation_ids(&mut doc).unwrap();
        assert_eq!(
            doc["paths"]["/work_queues/"]["post"]["operationId"],
            "create_work_queue"
        );
        assert_eq!(
            doc["paths"]["/work_pools/{work_pool_name}/queues"]["post"]["operationId"],
            "create_work_queue_in_work_pools"
        );
        assert_eq!(doc["paths"]["/flows/"]["post"]["operationId"], "create_flow");
    }

    #[test]
    fn rename_operation_ids_fails_naming_the_operations_it_cannot_separate() {
        let mut doc = doc_with(json!({
            "/a": { "get": { "operationId": "x" }, "post": { "operationId": "x" } },
        }));
        let err = rename_operation_ids(&mut doc).unwrap_err();
        assert!(
            err.location.contains("GET /a") && err.location.contains("POST /a"),
            "{err}"
        );
        let mut doc = doc_with(json!({ "/a": { "get": {} } }));
        assert!(
            rename_operation_ids(&mut doc)
                .unwrap_err()
                .location
                .contains("GET /a")
        );
    }

    #[test]
    fn body_schemas_take_the_operation_name() {
        let mut doc = doc_with(json!({ "/l/": { "post": {
            "operationId": "create_l_l__post",
            "requestBody": { "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Body_create_l_l__post" } } } },
        } } }));
        doc["components"] = json!({ "schemas": { "Body_create_l_l__post": { "title": "Body_create_l_l__post", "type": "object" } } });
        let renamed = rename_operation_ids(&mut doc).unwrap();
        assert_eq!(renamed["create_l_l__post"], "create_l");
        rename_body_schemas(&mut doc, &renamed).unwrap();
        assert_eq!(
            doc["components"]["schemas"]["create_l_body"]["title"],
            "create_l_body"
        );
        assert!(
            doc["components"]["schemas"]
                .get("Body_create_l_l__post")
                .is_none()
        );
        assert_eq!(
            doc["paths"]["/l/"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/create_l_body"
        );
    }

    #[test]
    fn drop_api_version_header_keeps_other_parameters() {
        let mut doc = doc_with(json!({ "/a": { "get": { "operationId": "a", "parameters": [
            { "in": "header", "name": "x-prefect-api-version", "schema": { "type": "string" } },
            { "in": "header", "name": "x-prefect-ui", "schema": { "type": "boolean" } },
            { "in": "query", "name": "x-prefect-api-version", "schema": { "type": "string" } },
        ] } } }));
        drop_api_version_header(&mut doc);
        let params = doc["paths"]["/a"]["get"]["parameters"].as_array().unwrap();
        assert_eq!(params.len(), 2);
        assert_eq!(params[0]["name"], "x-prefect-ui");
        assert_eq!(params[1]["in"], "query");
    }

    #[test]
    fn success_becomes_2xx_and_errors_are_dropped() {
        let mut doc = doc_with(json!({ "/a": { "post": { "operationId": "a", "responses": {
            "200": { "description": "ok", "content": { "application/json": { "schema": { "type": "string" } } } },
            "422": { "description": "bad" },
        } } } }));
        declare_success_as_any_2xx(&mut doc).unwrap();
        let responses = doc["paths"]["/a"]["post"]["responses"].as_object().unwrap();
        assert_eq!(responses.keys().collect::<Vec<_>>(), ["2XX"]);
        assert_eq!(responses["2XX"]["description"], "ok");
    }

    #[test]
    fn success_step_fails_on_missing_or_several_successes() {
        let mut doc =
            doc_with(json!({ "/a": { "get": { "operationId": "a", "responses": { "422": {} } } } }));
        let err = declare_success_as_any_2xx(&mut doc).unwrap_err();
        assert_eq!(err.location, "a");
        let mut doc = doc_with(
            json!({ "/a": { "get": { "operationId": "b", "responses": { "200": {}, "201": {} } } } }),
        );
        assert!(
            declare_success_as_any_2xx(&mut doc)
                .unwrap_err()
                .message
                .contains("200, 201")
        );
    }

    #[test]
    fn unsupported_keywords_are_dropped_but_properties_of_that_name_kept() {
        let mut doc = json!({ "openapi": "3.1.0", "paths": {}, "components": { "schemas": { "S": {
            "type": "object",
            "examples": [{ "a": 1 }],
            "properties": { "examples": { "type": "string", "examples": ["x"], "supported_environment_variables": ["X"] } },
        } } } });
        for_each_schema(&mut doc, &mut |s, _| drop_unsupported_keywords(s));
        let s = &doc["components"]["schemas"]["S"];
        assert!(s.get("examples").is_none());
        assert_eq!(s["properties"]["examples"], json!({ "type": "string" }));
    }

    #[test]
    fn exclusive_bounds_become_booleans() {
        let mut s = object(json!({ "type": "number", "exclusiveMinimum": 0.0, "exclusiveMaximum": 5 }));
        exclusive_bounds_to_boolean(&mut s);
        assert_eq!(
            Value::Object(s),
            json!({ "type": "number", "minimum": 0.0, "exclusiveMinimum": true, "maximum": 5, "exclusiveMaximum": true })
        );
        let mut already = object(json!({ "minimum": 1, "exclusiveMinimum": true }));
        exclusive_bounds_to_boolean(&mut already);
        assert_eq!(
            Value::Object(already),
            json!({ "minimum": 1, "exclusiveMinimum": true })
        );
    }

    #[test]
    fn prefix_items_become_items() {
        let mut same = object(
            json!({ "type": "array", "prefixItems": [{ "type": "string" }, { "type": "string" }], "minItems": 2, "maxItems": 2 }),
        );
        prefix_items_to_items(&mut same);
        assert_eq!(
            Value::Object(same),
            json!({ "type": "array", "items": { "type": "string" } })
        );
        let mut mixed =
            object(json!({ "type": "array", "prefixItems": [{ "type": "string" }, { "$ref": "#/x" }] }));
        prefix_items_to_items(&mut mixed);
        assert_eq!(mixed["items"], json!({}));
    }

    #[test]
    fn type_lists_become_nullable() {
        let mut s = object(json!({ "type": ["string", "null"] }));
        type_lists_to_nullable(&mut s);
        assert_eq!(Value::Object(s), json!({ "type": "string", "nullable": true }));
        let mut several = object(json!({ "type": ["string", "integer"] }));
        type_lists_to_nullable(&mut several);
        assert_eq!(
            Value::Object(several),
            json!({ "anyOf": [{ "type": "string" }, { "type": "integer" }] })
        );
    }

    #[test]
    fn null_union_with_inline_member_is_merged() {
        let mut s = object(
            json!({ "anyOf": [{ "type": "string", "format": "uuid" }, { "type": "null" }], "title": "Id", "description": "d" }),
        );
        null_unions_to_nullable(&mut s);
        assert_eq!(
            Value::Object(s),
            json!({ "type": "string", "format": "uuid", "nullable": true, "title": "Id", "description": "d" })
        );
    }

    #[test]
    fn null_union_with_ref_becomes_all_of() {
        let mut s = object(
            json!({ "anyOf": [{ "$ref": "#/components/schemas/State" }, { "type": "null" }], "default": null }),
        );
        null_unions_to_nullable(&mut s);
        assert_eq!(
            Value::Object(s),
            json!({ "allOf": [{ "$ref": "#/components/schemas/State" }], "nullable": true, "default": null })
        );
    }

    #[test]
    fn null_union_with_several_members_keeps_the_union() {
        let mut s =
            object(json!({ "oneOf": [{ "type": "string" }, { "type": "integer" }, { "type": "null" }] }));
        null_unions_to_nullable(&mut s);
        assert_eq!(
            Value::Object(s),
            json!({ "oneOf": [{ "type": "string" }, { "type": "integer" }], "nullable": true })
        );
    }

    #[test]
    fn nested_null_unions_convert_bottom_up() {
        let mut doc = json!({ "openapi": "3.1.0", "paths": {}, "components": { "schemas": { "S": {
            "anyOf": [ { "anyOf": [{ "type": "integer" }, { "type": "null" }] }, { "type": "null" } ]
        } } } });
        for_each_schema(&mut doc, &mut |s, _| null_unions_to_nullable(s));
        assert_eq!(
            doc["components"]["schemas"]["S"],
            json!({ "type": "integer", "nullable": true })
        );
    }

    #[test]
    fn is_null_schema_recognises_every_null_form() {
        assert!(is_null_schema(&json!({ "type": "null" })));
        assert!(is_null_schema(&json!({ "const": null })));
        assert!(is_null_schema(&json!({ "enum": [null] })));
        assert!(!is_null_schema(&json!({ "type": "string", "nullable": true })));
    }

    #[test]
    fn union_members_are_deduplicated_in_order() {
        let mut s =
            object(json!({ "anyOf": [{ "type": "string" }, { "type": "integer" }, { "type": "string" }] }));
        dedupe_union_members(&mut s);
        assert_eq!(s["anyOf"], json!([{ "type": "string" }, { "type": "integer" }]));
    }

    fn union_doc(b_type: Value) -> Value {
        json!({ "openapi": "3.1.0", "paths": {}, "components": { "schemas": {
            "A": { "type": "object", "properties": { "type": { "const": "a" }, "x": { "type": "string" } } },
            "B": { "type": "object", "properties": { "type": b_type } },
            "U": { "anyOf": [{ "$ref": "#/components/schemas/A" }, { "$ref": "#/components/schemas/B" }] },
        } } })
    }

    #[test]
    fn discriminated_unions_become_one_of() {
        let mut doc = union_doc(json!({ "const": "b" }));
        discriminated_unions_to_one_of(&mut doc);
        assert!(doc["components"]["schemas"]["U"].get("oneOf").is_some());
        assert!(doc["components"]["schemas"]["U"].get("anyOf").is_none());
    }

    #[test]
    fn unions_without_distinct_constants_stay_any_of() {
        for b in [json!({ "const": "a" }), json!({ "type": "string" })] {
            let mut doc = union_doc(b);
            discriminated_unions_to_one_of(&mut doc);
            assert!(doc["components"]["schemas"]["U"].get("anyOf").is_some());
        }
    }

    #[test]
    fn durations_become_seconds() {
        let mut s = object(json!({ "type": "string", "format": "duration", "title": "Within" }));
        durations_as_seconds(&mut s);
        assert_eq!(Value::Object(s), json!({ "type": "number", "title": "Within" }));
    }

    #[test]
    fn iso8601_defaults_become_seconds() {
        assert_eq!(iso8601_seconds("PT0S"), Some(0.0));
        assert_eq!(iso8601_seconds("PT1H30M"), Some(5400.0));
        assert_eq!(iso8601_seconds("P7D"), Some(604_800.0));
        assert_eq!(iso8601_seconds("P1DT0.5S"), Some(86_400.5));
        assert_eq!(iso8601_seconds("P1Y"), None);
        assert_eq!(iso8601_seconds("1H"), None);
        let mut s = object(json!({ "type": "string", "format": "duration", "default": "PT1M" }));
        durations_as_seconds(&mut s);
        assert_eq!(s["default"], json!(60.0));
        let mut map = object(
            json!({ "type": "object", "additionalProperties": { "type": "number" }, "default": { "a": "P7D" } }),
        );
        durations_as_seconds(&mut map);
        assert_eq!(map["default"], json!({ "a": 604_800.0 }));
    }

    #[test]
    fn unions_with_an_unconstrained_member_admit_anything() {
        let mut s = object(json!({ "anyOf": [{ "type": "object" }, {}], "nullable": true, "title": "Data" }));
        unconstrained_unions_to_any(&mut s);
        assert_eq!(Value::Object(s), json!({ "nullable": true, "title": "Data" }));
        let mut kept = object(json!({ "anyOf": [{ "type": "object" }, { "type": "string" }] }));
        unconstrained_unions_to_any(&mut kept);
        assert!(kept.contains_key("anyOf"));
    }

    #[test]
    fn remaining_any_of_becomes_one_of() {
        let mut s =
            object(json!({ "anyOf": [{ "type": "integer" }, { "enum": ["any", "all"] }], "default": 0 }));
        remaining_any_of_to_one_of(&mut s);
        assert_eq!(
            Value::Object(s),
            json!({ "oneOf": [{ "type": "integer" }, { "enum": ["any", "all"] }] })
        );
    }

    #[test]
    fn header_params_lose_nullable() {
        let mut doc = doc_with(json!({ "/a": { "get": { "operationId": "a", "parameters": [
            { "in": "header", "name": "x-prefect-ui", "schema": { "type": "boolean", "nullable": true } },
            { "in": "query", "name": "q", "schema": { "type": "boolean", "nullable": true } },
        ] } } }));
        header_params_not_nullable(&mut doc);
        let params = &doc["paths"]["/a"]["get"]["parameters"];
        assert_eq!(params[0]["schema"], json!({ "type": "boolean" }));
        assert_eq!(params[1]["schema"]["nullable"], true);
    }

    #[test]
    fn string_union_parameters_become_strings() {
        let mut doc = doc_with(
            json!({ "/v2/l/{id_or_name}": { "get": { "operationId": "r", "parameters": [
            { "in": "path", "name": "id_or_name", "required": true,
              "schema": { "anyOf": [{ "type": "string", "format": "uuid" }, { "type": "string" }], "title": "Id Or Name" } },
        ] } } }),
        );
        string_union_params_to_string(&mut doc).unwrap();
        assert_eq!(
            doc["paths"]["/v2/l/{id_or_name}"]["get"]["parameters"][0]["schema"],
            json!({ "type": "string", "title": "Id Or Name" })
        );
    }

    #[test]
    fn non_string_union_parameters_fail_naming_the_operation() {
        let mut doc = doc_with(json!({ "/a": { "get": { "operationId": "r", "parameters": [
            { "in": "query", "name": "p", "schema": { "anyOf": [{ "type": "string" }, { "type": "integer" }] } },
        ] } } }));
        let err = string_union_params_to_string(&mut doc).unwrap_err();
        assert!(
            err.location.contains("`p`") && err.location.contains("`r`"),
            "{err}"
        );
    }

    #[test]
    fn const_becomes_titled_enum_without_default() {
        let mut doc = json!({ "openapi": "3.1.0", "paths": {}, "components": { "schemas": {
            "CallWebhook": { "type": "object", "properties": { "type": { "const": "call-webhook", "default": "call-webhook", "title": "Type" } } },
            "CancelFlowRun": { "type": "object", "properties": { "type": { "const": "cancel-flow-run", "title": "Type" } } },
        } } });
        const_to_enum(&mut doc);
        let a = &doc["components"]["schemas"]["CallWebhook"]["properties"]["type"];
        let b = &doc["components"]["schemas"]["CancelFlowRun"]["properties"]["type"];
        assert_eq!(
            *a,
            json!({ "enum": ["call-webhook"], "title": "CallWebhook type" })
        );
        assert_eq!(b["title"], "CancelFlowRun type");
    }

    #[test]
    fn indented_blocks_are_fenced_as_text() {
        let text = "Order:\n\n    - first\n    - second\n\nAfter.";
        assert_eq!(
            fence_indented_text(text),
            "Order:\n\n```text\n- first\n- second\n```\n\nAfter."
        );
        let trailing = "x\n\n    code";
        assert_eq!(fence_indented_text(trailing), "x\n\n```text\ncode\n```");
        // A continuation line right after a paragraph is not a code block.
        assert_eq!(fence_indented_text("a\n    b"), "a\n    b");
    }

    #[test]
    fn default_titles_match_fastapi() {
        assert_eq!(default_title("actions_on_trigger"), "Actions On Trigger");
        assert_eq!(default_title("name"), "Name");
    }

    #[test]
    fn properties_with_default_titles_are_titled_by_location() {
        let mut doc = json!({ "openapi": "3.1.0", "paths": {}, "components": { "schemas": {
            "WorkPool": { "type": "object", "title": "WorkPool", "properties": {
                "name": { "type": "string", "pattern": "^[^/]+$", "title": "Name" },
                "status": { "enum": ["READY"], "title": "WorkPoolStatus" },
            } },
        } } });
        title_properties_by_location(&mut doc);
        let props = &doc["components"]["schemas"]["WorkPool"]["properties"];
        assert_eq!(props["name"]["title"], "WorkPool name");
        assert_eq!(
            props["status"]["title"], "WorkPoolStatus",
            "a chosen title is kept"
        );
        assert_eq!(doc["components"]["schemas"]["WorkPool"]["title"], "WorkPool");
    }

    #[test]
    fn const_titles_stay_unique() {
        let mut taken = BTreeSet::new();
        let loc = vec!["A".to_string(), "b".to_string()];
        assert_eq!(const_title(&loc, &mut taken), "A b");
        assert_eq!(const_title(&loc, &mut taken), "A b 2");
    }

    #[test]
    fn walker_reaches_parameters_bodies_and_responses_children_first() {
        let mut doc = doc_with(json!({ "/a": { "post": {
            "operationId": "op",
            "parameters": [{ "in": "query", "name": "q", "schema": { "type": "string" } }],
            "requestBody": { "content": { "application/json": { "schema": { "type": "object", "properties": { "p": { "type": "string" } } } } } },
            "responses": { "200": { "content": { "application/json": { "schema": { "type": "array", "items": { "type": "string" } } } } } },
        } } }));
        let mut seen = Vec::new();
        for_each_schema(&mut doc, &mut |_, loc| seen.push(loc.join("/")));
        assert_eq!(
            seen,
            [
                "op/q",
                "op/body/p",
                "op/body",
                "op/response 200",
                "op/response 200"
            ]
        );
    }

    #[test]
    fn normalize_runs_all_steps_on_a_small_document() {
        let mut doc = json!({
            "openapi": "3.1.0", "info": { "title": "t", "version": "1" },
            "paths": { "/concurrency_limits/": { "post": {
                "operationId": "create_concurrency_limit_concurrency_limits__post",
                "parameters": [{ "in": "header", "name": "x-prefect-api-version", "schema": { "anyOf": [{ "type": "string" }, { "type": "null" }] } }],
                "responses": { "200": { "content": { "application/json": { "schema": { "$ref": "#/components/schemas/L" } } } }, "422": {} },
            } } },
            "components": { "schemas": { "L": { "type": "object", "properties": {
                "tag": { "type": "string", "examples": ["x"] },
                "n": { "anyOf": [{ "type": "integer", "exclusiveMinimum": 0 }, { "type": "null" }] },
            } } } },
        });
        normalize(&mut doc).unwrap();
        let op = &doc["paths"]["/concurrency_limits/"]["post"];
        assert_eq!(op["operationId"], "create_concurrency_limit");
        assert_eq!(op["parameters"], json!([]));
        assert!(op["responses"].get("2XX").is_some());
        let n = &doc["components"]["schemas"]["L"]["properties"]["n"];
        assert_eq!(
            *n,
            json!({ "type": "integer", "minimum": 0, "exclusiveMinimum": true, "nullable": true })
        );
        assert_eq!(doc["openapi"], "3.0.3");
    }
}
