//! Block types: the kinds of blocks (`secret`, `webhook`, your own), found by slug.

use uuid::Uuid;

use crate::query::BlockTypeQuery;
use crate::resources::{call, generated_name, list_verbs, send_on_await};
use crate::types::{BlockType, BlockTypeCreate, BlockTypeUpdate};
use crate::{Client, Error};

/// Block types; from [`Blocks::types`](super::Blocks::types).
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
/// let types = client.blocks().types();
/// let secret = types.get_by_slug("secret").await?;
/// println!("{} ({})", *secret.name, secret.slug);
/// let warehouse = types.create("warehouse", "Warehouse").description("Where rows go").await?;
/// types.update(warehouse.id).logo_url("https://example.com/logo.png").await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct BlockTypes<'a> {
    client: &'a Client,
}

impl<'a> BlockTypes<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        BlockTypes { client }
    }

    /// A new block type `slug` named `name`; set its options, then await it (or
    /// [`send`](CreateBlockType::send) it). To make a Rust type a block type, prefer
    /// [`Blocks::register`](super::Blocks::register), which creates its schema too.
    pub fn create(&self, slug: &str, name: &str) -> CreateBlockType {
        CreateBlockType {
            client: self.client.clone(),
            slug: slug.to_string(),
            name: name.to_string(),
            shown: Presentation::default(),
        }
    }

    /// The block type with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no block type has this id; any other error of the request.
    pub async fn get(&self, id: Uuid) -> Result<BlockType, Error> {
        call!(self.client, read_block_type_by_id(&id))
    }

    /// The block type with this slug (`secret`, `webhook`, `local-file-system`, …).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty slug or one with `/` (nothing sent);
    /// [`Error::NotFound`] when there is none; any other error of the request.
    pub async fn get_by_slug(&self, slug: &str) -> Result<BlockType, Error> {
        check_path_slug(slug)?;
        call!(self.client, read_block_type_by_slug(slug))
    }

    /// Changes the block type with this id; fields not set keep their value. Prefect's own
    /// block types are protected: the server refuses changes to them ([`Error::Forbidden`]).
    pub fn update(&self, id: Uuid) -> UpdateBlockType {
        UpdateBlockType {
            client: self.client.clone(),
            id,
            shown: Presentation::default(),
        }
    }

    /// Deletes the block type with this id (the server refuses for protected ones).
    ///
    /// # Errors
    /// [`Error::NotFound`] when no block type has this id; [`Error::Forbidden`] for a
    /// protected type; any other error of the request.
    pub async fn delete(&self, id: Uuid) -> Result<(), Error> {
        call!(self.client, delete_block_type(&id))
    }

    list_verbs!("block types", BlockTypeQuery => BlockType);
}

/// Block type slugs as Python's `slugify` writes them: lowercase ASCII letters and digits in
/// words joined by single `-`.
pub(super) fn check_slug(slug: &str) -> Result<(), Error> {
    let words_ok = !slug.is_empty()
        && slug.split('-').all(|word| {
            !word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    if words_ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "block type slug",
            format!(
                "{slug:?}; use lowercase letters and digits in words joined by '-' (as Python's slugify writes class names: `my-warehouse`)"
            ),
        ))
    }
}

/// A slug that goes into a URL path: not empty, no `/` (it would change the path), no spaces
/// around it or control characters. Slugs the server has are read as they are; new ones are
/// checked as Python writes them.
pub(super) fn check_path_slug(slug: &str) -> Result<(), Error> {
    if slug.is_empty() || slug.contains('/') || slug.trim() != slug || slug.chars().any(char::is_control) {
        return Err(Error::invalid(
            "block type slug",
            format!("{slug:?}; give a block type's slug, e.g. \"secret\" or \"local-file-system\""),
        ));
    }
    Ok(())
}

/// What Prefect's UI shows of a block type besides its name; what is unset is not sent.
#[derive(Debug, Clone, Default)]
struct Presentation {
    description: Option<String>,
    logo_url: Option<String>,
    documentation_url: Option<String>,
    code_example: Option<String>,
}

/// The four setters of a block type's [`Presentation`], for both builders.
macro_rules! presentation_setters {
    ($builder:ty) => {
        impl $builder {
            /// A short description of what blocks of this type are for.
            pub fn description(mut self, description: &str) -> Self {
                self.shown.description = Some(description.into());
                self
            }

            /// A URL of the type's logo.
            pub fn logo_url(mut self, url: &str) -> Self {
                self.shown.logo_url = Some(url.into());
                self
            }

            /// A URL of the type's documentation.
            pub fn documentation_url(mut self, url: &str) -> Self {
                self.shown.documentation_url = Some(url.into());
                self
            }

            /// A code example Prefect's UI shows with the type.
            pub fn code_example(mut self, example: &str) -> Self {
                self.shown.code_example = Some(example.into());
                self
            }

            /// Sets the given ones of description, logo URL, documentation URL and code
            /// example, in that order.
            pub(super) fn presentation(
                mut self,
                [description, logo_url, documentation_url, code_example]: [Option<&str>; 4],
            ) -> Self {
                let set = |value: Option<&str>, field: &mut Option<String>| {
                    if let Some(value) = value {
                        *field = Some(value.into());
                    }
                };
                set(description, &mut self.shown.description);
                set(logo_url, &mut self.shown.logo_url);
                set(documentation_url, &mut self.shown.documentation_url);
                set(code_example, &mut self.shown.code_example);
                self
            }
        }
    };
}

/// A block type to create; from [`BlockTypes::create`].
#[derive(Debug, Clone)]
#[must_use = "await it (or call .send().await) to create the block type"]
pub struct CreateBlockType {
    client: Client,
    slug: String,
    name: String,
    shown: Presentation,
}

presentation_setters!(CreateBlockType);

impl CreateBlockType {
    /// Creates the block type.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a slug that is not lowercase words joined by `-`, or a bad
    /// name (nothing sent); [`Error::Conflict`] when a type has this slug or name; any other
    /// error of the request.
    pub async fn send(self) -> Result<BlockType, Error> {
        check_slug(&self.slug)?;
        let body = BlockTypeCreate {
            name: generated_name("block type name", &self.name)?,
            slug: self.slug,
            description: self.shown.description,
            logo_url: self.shown.logo_url,
            documentation_url: self.shown.documentation_url,
            code_example: self.shown.code_example,
        };
        call!(self.client, create_block_type(&body))
    }
}

/// Changes to a block type; from [`BlockTypes::update`].
#[derive(Debug, Clone)]
#[must_use = "await it (or call .send().await) to update the block type"]
pub struct UpdateBlockType {
    client: Client,
    id: Uuid,
    shown: Presentation,
}

presentation_setters!(UpdateBlockType);

impl UpdateBlockType {
    /// Sends the changes.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no block type has the id; [`Error::Forbidden`] for a protected
    /// type; any other error of the request.
    pub async fn send(self) -> Result<(), Error> {
        let body = BlockTypeUpdate {
            description: self.shown.description,
            logo_url: self.shown.logo_url,
            documentation_url: self.shown.documentation_url,
            code_example: self.shown.code_example,
        };
        call!(self.client, update_block_type(&self.id, &body))
    }
}

send_on_await! {
    CreateBlockType => BlockType;
    UpdateBlockType => ();
}
