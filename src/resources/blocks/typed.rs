//! Rust types as Prefect blocks: the [`Block`] trait, the block schema made from a type's JSON
//! Schema in the shape Prefect stores (`block_type_slug`, `secret_fields`,
//! `block_schema_references`, nested blocks under `definitions`), and registration as Python's
//! `Block.register_type_and_schema` does it.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::block_types::check_slug;
use super::checksum::{references, schema_checksum};
use super::{BlockSchemas, BlockTypes};
use crate::resources::call;
use crate::types::{BlockSchema, BlockSchemaCreate, BlockType};
use crate::{Client, Error};

/// A Rust type whose values are the data of Prefect block documents of one block type: what
/// Python's `Block` subclasses are. Derive `Serialize`, `Deserialize` and
/// `schemars::JsonSchema` for a struct with named fields, and say which block type it is:
///
/// ```
/// use prefect_client::resources::blocks::{Block, SecretStr};
///
/// /// A warehouse to load rows into.
/// #[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
/// struct Warehouse {
///     /// The host to connect to.
///     host: String,
///     #[serde(default = "default_port")]
///     port: u16,
///     /// Never shown by Prefect's UI, nor by `Debug`.
///     password: SecretStr,
/// }
/// # fn default_port() -> u16 { 5432 }
///
/// impl Block for Warehouse {
///     const TYPE_SLUG: &'static str = "warehouse";
///     const TYPE_NAME: &'static str = "Warehouse";
/// }
/// ```
///
/// Then [`Blocks::register`](super::Blocks::register) creates the block type and its schema
/// (a Python class with the same slug and fields reads the same documents),
/// [`Blocks::save`](super::Blocks::save) writes a document and
/// [`Blocks::load`](super::Blocks::load) reads one back.
///
/// The schema is the type's JSON Schema (doc comments become descriptions, as docstrings do in
/// Python). Fields of type [`SecretStr`](super::SecretStr) or
/// [`SecretValue`](super::SecretValue) (also inside `Option`, lists, maps and nested structs)
/// are the block's `secret_fields`: Prefect obfuscates them in its UI and in reads without
/// secrets. A field holding another block is declared in [`BLOCK_FIELDS`](Self::BLOCK_FIELDS).
pub trait Block: Serialize + DeserializeOwned + JsonSchema {
    /// The block type's slug, how Prefect and Python's `Block` classes find the type:
    /// lowercase letters, digits and `-` (Python's `slugify` of the class name, e.g.
    /// `my-warehouse` for `MyWarehouse`).
    const TYPE_SLUG: &'static str;
    /// The block type's name as Prefect's UI shows it (Python: the class name, or
    /// `_block_type_name`).
    const TYPE_NAME: &'static str;
    /// The block type's description; `None` keeps the type's doc comment (`_description`).
    const DESCRIPTION: Option<&'static str> = None;
    /// A URL of the block type's logo (`_logo_url`).
    const LOGO_URL: Option<&'static str> = None;
    /// A URL of the block type's documentation (`_documentation_url`).
    const DOCUMENTATION_URL: Option<&'static str> = None;
    /// A code example Prefect's UI shows (`_code_example`).
    const CODE_EXAMPLE: Option<&'static str> = None;
    /// The block schema's capabilities (`_block_schema_capabilities`).
    const CAPABILITIES: &'static [&'static str] = &[];
    /// The block schema's version (`_block_schema_version`; Python defaults to the package's
    /// version, else `non-versioned`).
    const SCHEMA_VERSION: &'static str = "non-versioned";
    /// Where the block schema comes from: this type ([`SchemaOrigin::Derived`], the default) or
    /// the server ([`SchemaOrigin::Server`], for block types Prefect or a Python collection
    /// registered).
    const SCHEMA_ORIGIN: SchemaOrigin = SchemaOrigin::Derived;
    /// The fields that hold another block: `&[BlockField::new::<Credentials>("credentials")]`.
    /// Such a field's type is the block type itself (its data is stored inline), `Option` of
    /// it, or [`BlockRef`](super::BlockRef) of it (a reference to a saved document, as Python
    /// stores a saved nested block).
    const BLOCK_FIELDS: &'static [BlockField] = &[];
}

/// Where a [`Block`]'s block schema comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaOrigin {
    /// Made from the Rust type's JSON Schema and registered by
    /// [`Blocks::register`](super::Blocks::register) (created when no schema with its checksum
    /// exists).
    Derived,
    /// The newest schema the server has for the block type, never registered from Rust: for
    /// Prefect's system blocks ([`Secret`](super::Secret), [`Webhook`](super::Webhook),
    /// [`LocalFileSystem`](super::LocalFileSystem)) and blocks a Python collection registered.
    Server,
}

/// A field of a [`Block`] that holds another block, for [`Block::BLOCK_FIELDS`].
#[derive(Clone, Copy)]
pub struct BlockField {
    field: &'static str,
    spec: fn() -> Spec,
}

impl BlockField {
    /// The field `field` (its name as serialized) holds a `B`.
    pub const fn new<B: Block>(field: &'static str) -> BlockField {
        BlockField {
            field,
            spec: Spec::of::<B>,
        }
    }

    /// The field's name.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// The slug of the block type the field holds.
    pub fn type_slug(&self) -> &'static str {
        (self.spec)().slug
    }
}

impl std::fmt::Debug for BlockField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockField")
            .field("field", &self.field)
            .field("type_slug", &self.type_slug())
            .finish()
    }
}

/// A block type and schema as the server has them after
/// [`Blocks::register`](super::Blocks::register).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BlockRegistration {
    /// The block type.
    pub block_type: BlockType,
    /// The block schema documents are saved with.
    pub block_schema: BlockSchema,
}

/// What registration needs of a [`Block`], without its type parameter (so nested blocks can be
/// walked).
#[derive(Clone, Copy)]
pub(super) struct Spec {
    pub(super) slug: &'static str,
    name: &'static str,
    description: Option<&'static str>,
    logo_url: Option<&'static str>,
    documentation_url: Option<&'static str>,
    code_example: Option<&'static str>,
    capabilities: &'static [&'static str],
    version: &'static str,
    pub(super) origin: SchemaOrigin,
    block_fields: &'static [BlockField],
    json_schema: fn() -> Map<String, Value>,
}

impl Spec {
    pub(super) fn of<B: Block>() -> Spec {
        Spec {
            slug: B::TYPE_SLUG,
            name: B::TYPE_NAME,
            description: B::DESCRIPTION,
            logo_url: B::LOGO_URL,
            documentation_url: B::DOCUMENTATION_URL,
            code_example: B::CODE_EXAMPLE,
            capabilities: B::CAPABILITIES,
            version: B::SCHEMA_VERSION,
            origin: B::SCHEMA_ORIGIN,
            block_fields: B::BLOCK_FIELDS,
            json_schema: json_schema::<B>,
        }
    }
}

/// The block schema fields of `T` as [`Blocks::register`](super::Blocks::register) registers
/// them (and Prefect stores them): the type's JSON Schema (draft 7, references under
/// `#/definitions/`) with `title`, `type: object`, `properties`, `required`,
/// `block_type_slug`, `secret_fields`, `block_schema_references`, and each nested block's own
/// fields as its definition. Their checksum is [`schema_checksum`](super::schema_checksum).
///
/// # Errors
/// [`Error::InvalidInput`] when `T` is not a struct with named fields, its slug is not a
/// slug, a [`BlockField`] names no field of `T` or a field that holds no one block type, or a
/// nested block's schema is the server's ([`SchemaOrigin::Server`]: register `T` instead,
/// which reads it).
pub fn schema_fields<T: Block>() -> Result<Map<String, Value>, Error> {
    block_schema_fields(&Spec::of::<T>(), &Nested::new(), 0)
}

/// The fields and checksum of nested blocks whose schema is the server's, by slug.
pub(super) type Nested = BTreeMap<&'static str, (Map<String, Value>, String)>;

/// Nested blocks deeper than this are refused (a block that holds itself).
const MAX_NESTING: usize = 16;

/// `T`'s JSON Schema as schemars writes it for draft 7, without `$schema`.
fn json_schema<T: JsonSchema>() -> Map<String, Value> {
    let schema = schemars::generate::SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<T>();
    match serde_json::to_value(schema) {
        Ok(Value::Object(mut object)) => {
            object.remove("$schema");
            object
        }
        _ => Map::new(),
    }
}

pub(super) fn block_schema_fields(
    spec: &Spec,
    nested: &Nested,
    depth: usize,
) -> Result<Map<String, Value>, Error> {
    check_spec(spec, depth)?;
    let mut fields = (spec.json_schema)();
    if !fields.get("properties").is_some_and(Value::is_object) {
        return Err(Error::invalid(
            "block type",
            format!(
                "`{}`'s JSON Schema has no properties; a block's data is a JSON object: make the type a struct with named fields",
                spec.slug
            ),
        ));
    }
    fields.insert("type".into(), "object".into());
    add_titles(&mut fields);
    if let Some(description) = spec.description {
        fields.insert("description".into(), description.into());
    }
    let mut definitions = match fields.remove("definitions") {
        Some(Value::Object(definitions)) => definitions,
        _ => Map::new(),
    };
    let mut block_references = Map::new();
    for block_field in spec.block_fields {
        let inner = (block_field.spec)();
        let name = block_field.field;
        let Some(property) = fields["properties"].get(name) else {
            return Err(Error::invalid(
                "block field",
                format!(
                    "`{}` declares the block field `{name}`, but it has no field `{name}`; give the field's name as it is serialized",
                    spec.slug
                ),
            ));
        };
        let mut targets = Vec::new();
        references(property, &mut targets);
        targets.sort();
        targets.dedup();
        let [target] = targets.as_slice() else {
            return Err(Error::invalid(
                "block field",
                format!(
                    "the field `{name}` of `{}` must hold one block type (its schema refers to {} types); make it `{}`, `Option` of it or `BlockRef` of it",
                    spec.slug,
                    targets.len(),
                    inner.slug
                ),
            ));
        };
        let (mut inner_fields, checksum) = match inner.origin {
            SchemaOrigin::Derived => {
                let inner_fields = block_schema_fields(&inner, nested, depth + 1)?;
                let checksum = schema_checksum(&inner_fields);
                (inner_fields, checksum)
            }
            SchemaOrigin::Server => nested.get(inner.slug).cloned().ok_or_else(|| {
                Error::invalid(
                    "block field",
                    format!(
                        "the field `{name}` of `{}` holds a `{}` block, whose schema is the server's; register `{}` (which reads it) instead of computing its fields offline",
                        spec.slug, inner.slug, spec.slug
                    ),
                )
            })?,
        };
        if let Some(Value::Object(inner_definitions)) = inner_fields.remove("definitions") {
            for (key, definition) in inner_definitions {
                definitions.entry(key).or_insert(definition);
            }
        }
        let key = target.trim_start_matches("#/definitions/").to_string();
        definitions.insert(key, Value::Object(inner_fields));
        block_references.insert(
            name.to_string(),
            serde_json::json!({ "block_type_slug": inner.slug, "block_schema_checksum": checksum }),
        );
    }
    let mut secrets = Vec::new();
    if let Some(Value::Object(properties)) = fields.get("properties") {
        for (name, property) in properties {
            secret_paths(property, name, &definitions, &mut secrets, 0);
        }
    }
    let mut unique = Vec::new();
    for secret in secrets {
        if !unique.contains(&secret) {
            unique.push(secret);
        }
    }
    fields.insert("block_type_slug".into(), spec.slug.into());
    fields.insert("secret_fields".into(), unique.into());
    fields.insert("block_schema_references".into(), Value::Object(block_references));
    if !definitions.is_empty() {
        fields.insert("definitions".into(), Value::Object(definitions));
    }
    Ok(fields)
}

/// Titles where schemars writes none, as pydantic writes them (Prefect's UI labels fields and
/// forms with them): a property's is its name in title case with `_` as spaces
/// (`allow_private_urls`: "Allow Private Urls"), a definition's its name.
fn add_titles(fields: &mut Map<String, Value>) {
    fn titled(object: &mut Map<String, Value>) {
        if let Some(Value::Object(properties)) = object.get_mut("properties") {
            for (name, property) in properties.iter_mut() {
                if let Value::Object(property) = property
                    && !property.contains_key("title")
                    && !property.contains_key("$ref")
                {
                    property.insert("title".into(), python_title(name).into());
                }
            }
        }
    }
    titled(fields);
    if let Some(Value::Object(definitions)) = fields.get_mut("definitions") {
        for (name, definition) in definitions.iter_mut() {
            if let Value::Object(definition) = definition {
                definition.entry("title").or_insert_with(|| name.clone().into());
                titled(definition);
            }
        }
    }
}

/// Python's `name.title().replace("_", " ")`: each run of letters starts upper case and goes
/// on lower case.
fn python_title(name: &str) -> String {
    let mut title = String::with_capacity(name.len());
    let mut in_word = false;
    for c in name.chars() {
        if c.is_alphabetic() {
            if in_word {
                title.extend(c.to_lowercase());
            } else {
                title.extend(c.to_uppercase());
            }
            in_word = true;
        } else {
            title.push(if c == '_' { ' ' } else { c });
            in_word = false;
        }
    }
    title
}

/// The secret fields under `path`, as Prefect lists them: a field whose schema is `writeOnly`
/// (a secret string or value), `a.b` for one inside an object, `a.*` for a map of secrets, `a`
/// for a list of them.
fn secret_paths(
    schema: &Value,
    path: &str,
    definitions: &Map<String, Value>,
    found: &mut Vec<String>,
    depth: usize,
) {
    let Some(schema) = schema.as_object() else {
        return;
    };
    if depth > MAX_NESTING * 4 {
        return;
    }
    if schema.get("writeOnly") == Some(&Value::Bool(true)) {
        found.push(path.to_string());
        return;
    }
    if let Some(target) = schema.get("$ref").and_then(Value::as_str)
        && let Some(definition) = target
            .strip_prefix("#/definitions/")
            .and_then(|name| definitions.get(name))
    {
        secret_paths(definition, path, definitions, found, depth + 1);
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        for member in schema.get(key).and_then(Value::as_array).into_iter().flatten() {
            secret_paths(member, path, definitions, found, depth + 1);
        }
    }
    if let Some(Value::Object(properties)) = schema.get("properties") {
        for (name, property) in properties {
            secret_paths(property, &format!("{path}.{name}"), definitions, found, depth + 1);
        }
    }
    let holds_secrets = |inner: Option<&Value>| {
        let mut inside = Vec::new();
        if let Some(inner) = inner.filter(|s| s.is_object()) {
            secret_paths(inner, "", definitions, &mut inside, depth + 1);
        }
        !inside.is_empty()
    };
    if holds_secrets(schema.get("additionalProperties")) {
        found.push(format!("{path}.*"));
    }
    if holds_secrets(schema.get("items")) {
        found.push(path.to_string());
    }
}

/// A block type that can be registered at this depth of nesting: its slug is one, and it is not
/// nested too deep (a block that holds itself).
fn check_spec(spec: &Spec, depth: usize) -> Result<(), Error> {
    check_slug(spec.slug)?;
    if depth > MAX_NESTING {
        return Err(Error::invalid(
            "block type",
            format!(
                "`{}` nests blocks more than {MAX_NESTING} deep; a block cannot hold itself",
                spec.slug
            ),
        ));
    }
    Ok(())
}

/// Registers the block type and schema of `spec`, nested blocks first (Python's
/// `register_type_and_schema`).
pub(super) async fn register(client: &Client, spec: Spec) -> Result<BlockRegistration, Error> {
    let mut nested = Nested::new();
    register_spec(client, spec, &mut nested, 0).await
}

fn register_spec<'a>(
    client: &'a Client,
    spec: Spec,
    nested: &'a mut Nested,
    depth: usize,
) -> Pin<Box<dyn Future<Output = Result<BlockRegistration, Error>> + Send + 'a>> {
    Box::pin(async move {
        check_spec(&spec, depth)?;
        // Errors of the type itself come before any request.
        if spec.origin == SchemaOrigin::Derived
            && !spec
                .block_fields
                .iter()
                .any(|f| (f.spec)().origin == SchemaOrigin::Server)
        {
            block_schema_fields(&spec, nested, 0)?;
        }
        for block_field in spec.block_fields {
            let inner = (block_field.spec)();
            if !nested.contains_key(inner.slug) {
                let registered = register_spec(client, inner, nested, depth + 1).await?;
                let fields = registered.block_schema.fields.clone();
                nested.insert(inner.slug, (fields, registered.block_schema.checksum));
            }
        }
        match spec.origin {
            SchemaOrigin::Server => server_registration(client, spec.slug).await,
            SchemaOrigin::Derived => {
                let fields = block_schema_fields(&spec, nested, 0)?;
                let block_type = upsert_type(client, &spec).await?;
                let block_schema = upsert_schema(client, &spec, &block_type, fields).await?;
                Ok(BlockRegistration {
                    block_type,
                    block_schema,
                })
            }
        }
    })
}

/// The block type `slug` and its newest schema, as the server has them.
async fn server_registration(client: &Client, slug: &str) -> Result<BlockRegistration, Error> {
    let block_type = BlockTypes::new(client).get_by_slug(slug).await.map_err(|e| match e {
        Error::NotFound(mut api) => {
            api.detail = format!(
                "{}; the server has no block type `{slug}`: Prefect's own (secret, webhook, local-file-system) are installed when the server starts, a collection's with its `prefect block register -m <module>`",
                api.detail
            );
            Error::NotFound(api)
        }
        other => other,
    })?;
    let block_schema = BlockSchemas::new(client)
        .newest_of_type_id(block_type.id, slug)
        .await?;
    Ok(BlockRegistration {
        block_type,
        block_schema,
    })
}

/// The block type of `spec`: created when missing, its description, logo, documentation and
/// code example updated where the type sets them and the server's differ.
async fn upsert_type(client: &Client, spec: &Spec) -> Result<BlockType, Error> {
    let types = BlockTypes::new(client);
    // Python's description is `_description`, else the class docstring: here the doc comment.
    let description = spec.description.map(String::from).or_else(|| {
        let fields = (spec.json_schema)();
        fields
            .get("description")
            .and_then(Value::as_str)
            .map(String::from)
    });
    let wanted = [
        description.as_deref(),
        spec.logo_url,
        spec.documentation_url,
        spec.code_example,
    ];
    let existing = match types.get_by_slug(spec.slug).await {
        Ok(existing) => existing,
        Err(e) if e.is_not_found() => {
            match types
                .create(spec.slug, spec.name)
                .presentation(wanted)
                .send()
                .await
            {
                Ok(created) => return Ok(created),
                // Registered by someone else meanwhile: compare with theirs.
                Err(e) if e.is_conflict() => types.get_by_slug(spec.slug).await?,
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    let theirs = [
        existing.description.as_deref(),
        existing.logo_url.as_deref(),
        existing.documentation_url.as_deref(),
        existing.code_example.as_deref(),
    ];
    if wanted
        .iter()
        .zip(&theirs)
        .all(|(ours, theirs)| ours.is_none() || ours == theirs)
    {
        return Ok(existing);
    }
    types.update(existing.id).presentation(wanted).send().await?;
    types.get(existing.id).await
}

/// The block schema with these fields: read by its checksum and version, created when missing.
async fn upsert_schema(
    client: &Client,
    spec: &Spec,
    block_type: &BlockType,
    fields: Map<String, Value>,
) -> Result<BlockSchema, Error> {
    let checksum = schema_checksum(&fields);
    match call!(
        client,
        read_block_schema_by_checksum(&checksum, Some(spec.version))
    ) {
        Ok(schema) => Ok(schema),
        Err(e) if e.is_not_found() => {
            let body = BlockSchemaCreate {
                block_type_id: block_type.id,
                capabilities: spec.capabilities.iter().map(|c| c.to_string()).collect(),
                fields,
                version: spec.version.to_string(),
            };
            // The server answers with the existing schema when one has this checksum.
            call!(client, create_block_schema(&body))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::blocks::{BlockRef, SecretStr, SecretValue};
    use serde::Deserialize;

    /// Credentials.
    #[derive(Serialize, Deserialize, JsonSchema)]
    struct Inner {
        token: SecretStr,
        #[serde(default)]
        n: u32,
    }

    impl Block for Inner {
        const TYPE_SLUG: &'static str = "inner-test";
        const TYPE_NAME: &'static str = "Inner Test";
    }

    #[derive(Serialize, Deserialize, JsonSchema)]
    struct Window {
        start: i64,
    }

    /// What a warehouse is.
    #[derive(Serialize, Deserialize, JsonSchema)]
    struct Outer {
        /// The host.
        host: String,
        inner: Inner,
        saved: Option<BlockRef<Inner>>,
        window: Option<Window>,
        headers: BTreeMap<String, SecretStr>,
        tokens: Vec<SecretStr>,
        login: Option<SecretValue>,
    }

    impl Block for Outer {
        const TYPE_SLUG: &'static str = "outer-test";
        const TYPE_NAME: &'static str = "Outer Test";
        const BLOCK_FIELDS: &'static [BlockField] = &[
            BlockField::new::<Inner>("inner"),
            BlockField::new::<Inner>("saved"),
        ];
    }

    #[test]
    fn a_block_schema_has_the_shape_prefect_stores() {
        let fields = schema_fields::<Outer>().unwrap();
        assert_eq!(fields["title"], "Outer");
        assert_eq!(fields["type"], "object");
        assert_eq!(fields["description"], "What a warehouse is.");
        assert_eq!(fields["block_type_slug"], "outer-test");
        assert_eq!(fields["properties"]["host"]["description"], "The host.");
        assert_eq!(fields["properties"]["host"]["title"], "Host");
        assert_eq!(fields["definitions"]["Window"]["title"], "Window");
        assert_eq!(
            fields["definitions"]["Window"]["properties"]["start"]["title"],
            "Start"
        );
        assert_eq!(python_title("allow_private_urls"), "Allow Private Urls");
        assert_eq!(python_title("URL2go_x"), "Url2Go X");
        assert_eq!(
            fields["required"],
            serde_json::json!(["host", "inner", "headers", "tokens"])
        );
        assert!(!fields.contains_key("$schema"));
        assert_eq!(
            fields["secret_fields"],
            serde_json::json!(["headers.*", "inner.token", "login", "saved.token", "tokens"])
        );
        let inner = schema_fields::<Inner>().unwrap();
        let checksum = schema_checksum(&inner);
        for field in ["inner", "saved"] {
            assert_eq!(
                fields["block_schema_references"][field],
                serde_json::json!({ "block_type_slug": "inner-test", "block_schema_checksum": checksum })
            );
        }
        // The nested block's definition is its own block schema; plain structs stay as they are.
        assert_eq!(fields["definitions"]["Inner"], Value::Object(inner));
        assert_eq!(
            fields["definitions"]["Window"]["properties"]["start"]["type"],
            "integer"
        );
        assert!(fields["definitions"]["Window"].get("block_type_slug").is_none());
    }

    #[test]
    fn the_checksum_leaves_out_the_nested_blocks_definition_as_prefects() {
        let mut fields = schema_fields::<Outer>().unwrap();
        let before = schema_checksum(&fields);
        fields["definitions"]["Inner"]["title"] = "Changed".into();
        assert_eq!(schema_checksum(&fields), before);
        fields["definitions"]["Window"]["title"] = "Changed".into();
        assert_ne!(schema_checksum(&fields), before);
    }

    #[derive(Serialize, Deserialize, JsonSchema)]
    struct HostOnly {
        host: String,
    }

    impl Block for HostOnly {
        const TYPE_SLUG: &'static str = "host-only";
        const TYPE_NAME: &'static str = "Host Only";
    }

    /// `HostOnly` with these block fields.
    fn host_only(block_fields: &'static [BlockField]) -> Result<Map<String, Value>, Error> {
        let spec = Spec {
            block_fields,
            ..Spec::of::<HostOnly>()
        };
        block_schema_fields(&spec, &Nested::new(), 0)
    }

    const NOT_A_BLOCK: &[BlockField] = &[BlockField::new::<Inner>("host")];
    const NO_SUCH_FIELD: &[BlockField] = &[BlockField::new::<Inner>("inner")];

    #[derive(Serialize, Deserialize, JsonSchema)]
    struct Unnamed(String);

    impl Block for Unnamed {
        const TYPE_SLUG: &'static str = "unnamed";
        const TYPE_NAME: &'static str = "Unnamed";
    }

    #[test]
    fn types_that_cannot_be_blocks_are_refused_saying_why() {
        host_only(&[]).unwrap();
        let err = host_only(NOT_A_BLOCK).unwrap_err().to_string();
        assert!(
            err.contains("the field `host` of `host-only` must hold one block type"),
            "{err}"
        );
        let err = host_only(NO_SUCH_FIELD).unwrap_err().to_string();
        assert!(
            err.contains("declares the block field `inner`, but it has no field `inner`"),
            "{err}"
        );
        let err = schema_fields::<Unnamed>().unwrap_err().to_string();
        assert!(err.contains("struct with named fields"), "{err}");
        for bad in ["", "A", "a_b", "a--b", "-a", "a b"] {
            assert!(check_slug(bad).is_err(), "{bad:?}");
        }
        for good in ["secret", "local-file-system", "s3-bucket"] {
            check_slug(good).unwrap();
        }
    }
}
