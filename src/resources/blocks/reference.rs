//! [`BlockRef`]: a field of a block that refers to another saved block document, as Prefect
//! stores a nested block that was saved on its own.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

/// A field of a [`Block`](super::Block) that refers to a saved block document of type `B`:
/// written as `{"$ref": {"block_document_id": …}}`, as Python writes a nested block that was
/// saved; Prefect links the two documents and, when the outer one is read, sends the nested
/// one's data in its place, which [`value`](Self::value) holds after a
/// [`load`](super::Blocks::load). Declare the field in [`Block::BLOCK_FIELDS`](super::Block::BLOCK_FIELDS).
///
/// ```
/// use prefect_client::resources::blocks::{Block, BlockField, BlockRef, Secret};
///
/// #[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
/// struct Database {
///     host: String,
///     password: BlockRef<Secret>,
/// }
///
/// impl Block for Database {
///     const TYPE_SLUG: &'static str = "database";
///     const TYPE_NAME: &'static str = "Database";
///     const BLOCK_FIELDS: &'static [BlockField] = &[BlockField::new::<Secret>("password")];
/// }
///
/// # let saved_secret_id = uuid::Uuid::nil();
/// let db = Database { host: "db".into(), password: BlockRef::new(saved_secret_id) };
/// assert_eq!(
///     serde_json::to_value(&db).unwrap()["password"],
///     serde_json::json!({ "$ref": { "block_document_id": saved_secret_id.to_string() } })
/// );
/// ```
#[derive(Clone)]
pub struct BlockRef<B> {
    document_id: Uuid,
    value: Option<B>,
}

impl<B> BlockRef<B> {
    /// A reference to the saved block document with this id.
    pub fn new(document_id: Uuid) -> BlockRef<B> {
        BlockRef {
            document_id,
            value: None,
        }
    }

    /// The id of the referenced document.
    pub fn document_id(&self) -> Uuid {
        self.document_id
    }

    /// The referenced document's data, when read with the document that refers to it.
    pub fn value(&self) -> Option<&B> {
        self.value.as_ref()
    }

    /// The referenced document's data, when read with the document that refers to it.
    pub fn into_value(self) -> Option<B> {
        self.value
    }
}

impl<B: fmt::Debug> fmt::Debug for BlockRef<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockRef")
            .field("document_id", &self.document_id)
            .field("value", &self.value)
            .finish()
    }
}

impl<B> Serialize for BlockRef<B> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde_json::json!({ "$ref": { "block_document_id": self.document_id.to_string() } })
            .serialize(serializer)
    }
}

impl<'de, B: DeserializeOwned> Deserialize<'de> for BlockRef<B> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<BlockRef<B>, D::Error> {
        let mut object = Map::<String, Value>::deserialize(deserializer)?;
        let document_id = object
            .remove("$ref")
            .and_then(|reference| reference.get("block_document_id")?.as_str()?.parse().ok())
            .ok_or_else(|| {
                D::Error::custom(
                    "the block is stored in this field itself, not as a reference to a saved block document; give the field the block's own type instead of BlockRef",
                )
            })?;
        let value = if object.is_empty() {
            None
        } else {
            let value = serde_path_to_error::deserialize(Value::Object(object)).map_err(|e| {
                let path = e.path().to_string();
                D::Error::custom(format!("at `{path}`: {}", e.into_inner()))
            })?;
            Some(value)
        };
        Ok(BlockRef { document_id, value })
    }
}

impl<B: JsonSchema> JsonSchema for BlockRef<B> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        format!("BlockRef_{}", B::schema_name()).into()
    }

    /// The referenced block's schema: in a block schema, the field refers to the nested
    /// block's definition, as Python's does.
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<B>()
    }
}
