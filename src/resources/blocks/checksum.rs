//! A block schema's checksum exactly as Prefect computes it (`Block._calculate_schema_checksum`):
//! the schema without its `secret_fields` (at any depth) and without the definitions of nested
//! blocks, dumped as Python's `json.dumps(((fields,), {}), sort_keys=True)` writes it (default
//! separators `", "` and `": "`, `ensure_ascii`, Python's float `repr`), hashed with SHA-256.
//!
//! The server computes the same value from the fields it is sent, and finds schemas by it: a
//! checksum that differs by one byte registers a second schema for the same fields.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Map, Value};

/// The checksum Prefect gives a block schema with these fields: `sha256:` and 64 hex digits.
///
/// ```
/// use prefect_client::resources::blocks::schema_checksum;
///
/// let fields = serde_json::json!({ "title": "Demo", "type": "object", "properties": {} });
/// let checksum = schema_checksum(fields.as_object().unwrap());
/// assert!(checksum.starts_with("sha256:") && checksum.len() == 7 + 64);
/// ```
pub fn schema_checksum(fields: &Map<String, Value>) -> String {
    let fields = fields_for_checksum(fields);
    // Python hashes `(args, kwargs)`: the fields as the one positional argument, no keywords.
    let payload = Value::Array(vec![
        Value::Array(vec![Value::Object(fields)]),
        Value::Object(Map::new()),
    ]);
    let mut text = String::new();
    python_json(&payload, &mut text);
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let mut hex = String::with_capacity(7 + 64);
    hex.push_str("sha256:");
    for byte in digest.as_ref() {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// The fields as Prefect hashes them: `secret_fields` removed from every object (not inside
/// lists, as Prefect's `remove_nested_keys`), and `definitions` cut to the non-block
/// definitions the schema refers to (gone when there are none).
fn fields_for_checksum(fields: &Map<String, Value>) -> Map<String, Value> {
    let Value::Object(mut fields) = without_key(&Value::Object(fields.clone()), "secret_fields") else {
        unreachable!("an object stays an object")
    };
    if let Some(Value::Object(definitions)) = fields.get("definitions")
        && !definitions.is_empty()
    {
        let kept = non_block_definitions(&Value::Object(fields.clone()), definitions);
        if kept.is_empty() {
            fields.remove("definitions");
        } else {
            fields.insert("definitions".into(), Value::Object(kept));
        }
    }
    fields
}

/// `value` without `key` in any object reached through objects (Prefect's `remove_nested_keys`
/// does not look inside lists).
fn without_key(value: &Value, key: &str) -> Value {
    match value {
        Value::Object(object) => Value::Object(
            object
                .iter()
                .filter(|(k, _)| k.as_str() != key)
                .map(|(k, v)| (k.clone(), without_key(v, key)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Every `$ref` string anywhere in `value`, in Prefect's order (`_collect_nested_reference_strings`).
pub(super) fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            if let Some(Value::String(reference)) = object.get("$ref") {
                found.push(reference.clone());
            }
            for value in object.values() {
                references(value, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, found)),
        _ => {}
    }
}

/// The definitions `object` refers to, directly or through other kept definitions, that are
/// not blocks (a block's definition carries `block_type_slug`): Prefect's
/// `_get_non_block_reference_definitions`.
fn non_block_definitions(object: &Value, definitions: &Map<String, Value>) -> Map<String, Value> {
    let mut kept = Map::new();
    let mut found = Vec::new();
    references(object, &mut found);
    for reference in found {
        let key = reference.replace("#/definitions/", "");
        let Some(definition) = definitions.get(&key) else {
            continue;
        };
        // Python keeps a definition only when it is truthy: `{}` is dropped.
        let is_block = definition
            .get("block_type_slug")
            .is_some_and(|slug| !slug.is_null());
        let truthy = definition.as_object().is_none_or(|d| !d.is_empty());
        if truthy && !is_block && !kept.contains_key(&key) {
            kept.insert(key.clone(), definition.clone());
            for (k, v) in non_block_definitions(definition, definitions) {
                kept.entry(k).or_insert(v);
            }
        }
    }
    kept
}

/// `value` as Python's `json.dumps(value, sort_keys=True)` writes it.
fn python_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => match (number.as_i64(), number.as_u64(), number.as_f64()) {
            (Some(i), _, _) => {
                let _ = write!(out, "{i}");
            }
            (None, Some(u), _) => {
                let _ = write!(out, "{u}");
            }
            (None, None, Some(f)) => python_float(f, out),
            (None, None, None) => out.push_str(&number.to_string()),
        },
        Value::String(text) => python_string(text, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python_json(item, out);
            }
            out.push(']');
        }
        Value::Object(object) => {
            // Python sorts keys by code point, which is the order of their UTF-8 bytes.
            let sorted: BTreeMap<&String, &Value> = object.iter().collect();
            out.push('{');
            for (i, (key, value)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python_string(key, out);
                out.push_str(": ");
                python_json(value, out);
            }
            out.push('}');
        }
    }
}

/// A string as Python's `json.dumps` writes it with `ensure_ascii`: printable ASCII as it is
/// (but `"` and `\`), the usual short escapes, and `\uXXXX` (lowercase, surrogate pairs beyond
/// the first plane) for everything else, DEL included.
fn python_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// A float as Python's `repr`: the shortest digits that read back as the same float, in fixed
/// notation (with `.0` when whole) for decimal exponents from -4 to 15, otherwise as
/// `d.ddde+XX` with at least two exponent digits. JSON has no NaN or infinity to write.
fn python_float(f: f64, out: &mut String) {
    if f == 0.0 {
        out.push_str(if f.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits too: `1.2345e-7`.
    let scientific = format!("{:e}", f.abs());
    let (mantissa, exponent) = scientific.split_once('e').expect("`{:e}` has an exponent");
    let exponent: i32 = exponent.parse().expect("`{:e}` has a decimal exponent");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if f.is_sign_negative() {
        out.push('-');
    }
    // Python: the position of the decimal point after the first digit is `exponent + 1`.
    let point = exponent + 1;
    if (-3..=16).contains(&point) {
        if point <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', point.unsigned_abs() as usize));
            out.push_str(&digits);
        } else {
            let point = point as usize;
            if digits.len() <= point {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', point - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..point]);
                out.push('.');
                out.push_str(&digits[point..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let sign = if exponent < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", exponent.unsigned_abs());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `json.dumps(x)` of Python 3.11 for each value, checked with the venv's Python.
    #[test]
    fn floats_are_written_as_pythons_repr() {
        for (f, python) in [
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1234567890123456.0, "1234567890123456.0"),
            (1e-5, "1e-05"),
            (1e-4, "0.0001"),
            (0.25, "0.25"),
            (-2.5, "-2.5"),
            (1.0, "1.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (123.456, "123.456"),
            (1.5e300, "1.5e+300"),
            (2.2250738585072014e-308, "2.2250738585072014e-308"),
            (0.1 + 0.2, "0.30000000000000004"),
            (12345678901234567890.0, "1.2345678901234567e+19"),
        ] {
            let mut out = String::new();
            python_float(f, &mut out);
            assert_eq!(out, python, "{f:?}");
        }
    }

    #[test]
    fn strings_are_written_as_pythons_ensure_ascii() {
        let mut out = String::new();
        python_string("a\"b\\c\nd\te\u{7f}é—🦀\u{1}", &mut out);
        // json.dumps('a"b\\c\nd\te\x7fé—🦀\x01')
        assert_eq!(out, r#""a\"b\\c\nd\te\u007f\u00e9\u2014\ud83e\udd80\u0001""#);
    }

    #[test]
    fn a_python_blocks_schema_has_the_checksum_python_computes() {
        // `Outer.model_json_schema()` and `Outer._calculate_schema_checksum()` of this class,
        // printed by the Prefect 3.8.8 venv's Python (`json.dumps(schema)`):
        //   class Mode(str, enum.Enum): fast = "fast"; slow = "slow"
        //   class Window(BaseModel): start: int; ratio: float = 0.25
        //   class Inner(Block):
        //       """Credentials — für «tests» 🦀."""
        //       token: SecretStr; n: int = 3
        //   class Outer(Block):
        //       _block_type_slug = "outer-fixture"
        //       host: str = Field(description='A "host"\tname\\ with\ncontrol \x7f and é')
        //       inner: Inner; mode: Mode = Mode.fast; window: Optional[Window] = None
        //       big: float = 1e16; small: float = 1e-05; tiny: float = 0.0001; neg: float = -2.5
        //       ints: list[int] = [1, -2, 30000000000]; headers: SecretDict = SecretDict({})
        // It has escapes, non-ASCII text, floats in both notations, a nested block (whose
        // definition is left out of the hash), non-block definitions (kept) and secret fields
        // (left out).
        let schema = r##"{"block_schema_references": {"inner": {"block_schema_checksum": "sha256:bc9fc57a1629b6376c2e10e66814cff1ffe82d953064182b197b4f77941823dd", "block_type_slug": "inner"}}, "block_type_slug": "outer-fixture", "properties": {"host": {"description": "A \"host\"\tname\\ with\ncontrol \u007f and \u00e9", "title": "Host", "type": "string", "position": 0}, "inner": {"$ref": "#/definitions/Inner", "position": 1}, "mode": {"$ref": "#/definitions/Mode", "default": "fast", "position": 2}, "window": {"anyOf": [{"$ref": "#/definitions/Window"}, {"type": "null"}], "default": null, "position": 3}, "big": {"default": 1e+16, "title": "Big", "type": "number", "position": 4}, "small": {"default": 1e-05, "title": "Small", "type": "number", "position": 5}, "tiny": {"default": 0.0001, "title": "Tiny", "type": "number", "position": 6}, "neg": {"default": -2.5, "title": "Neg", "type": "number", "position": 7}, "ints": {"default": [1, -2, 30000000000], "items": {"type": "integer"}, "title": "Ints", "type": "array", "position": 8}, "headers": {"default": "", "title": "Headers", "type": "object", "position": 9}}, "required": ["host", "inner"], "secret_fields": ["inner.token", "headers.*"], "title": "Outer", "type": "object", "definitions": {"Inner": {"block_schema_references": {}, "block_type_slug": "inner", "description": "Credentials \u2014 f\u00fcr \u00abtests\u00bb \ud83e\udd80.", "properties": {"token": {"format": "password", "title": "Token", "type": "string", "writeOnly": true, "position": 0}, "n": {"default": 3, "title": "N", "type": "integer", "position": 1}}, "required": ["token"], "secret_fields": ["token"], "title": "Inner", "type": "object"}, "Mode": {"enum": ["fast", "slow"], "title": "Mode", "type": "string"}, "Window": {"properties": {"start": {"title": "Start", "type": "integer"}, "ratio": {"default": 0.25, "title": "Ratio", "type": "number"}}, "required": ["start"], "title": "Window", "type": "object"}}}"##;
        let schema: Map<String, Value> = serde_json::from_str(schema).unwrap();
        assert_eq!(
            schema_checksum(&schema),
            "sha256:61d8f2a664955b23b6a3fad8922e5c61985cde4b75c0805e6f16ebc9577c2e7c"
        );
        let inner = schema["definitions"]["Inner"].as_object().unwrap();
        assert_eq!(
            schema_checksum(inner),
            "sha256:bc9fc57a1629b6376c2e10e66814cff1ffe82d953064182b197b4f77941823dd",
            "a nested block's definition alone hashes as the block's own schema"
        );
    }

    #[test]
    fn secret_fields_and_block_definitions_do_not_change_the_checksum() {
        let plain = serde_json::json!({ "title": "T", "properties": { "a": { "type": "string" } } });
        let with = serde_json::json!({
            "title": "T",
            "properties": { "a": { "type": "string" } },
            "secret_fields": ["a"],
            "definitions": { "B": { "block_type_slug": "b" } },
        });
        assert_eq!(
            schema_checksum(plain.as_object().unwrap()),
            schema_checksum(with.as_object().unwrap())
        );
    }
}
