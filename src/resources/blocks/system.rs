//! The block types Prefect's server installs itself (Prefect 3.8: `secret`, `webhook`,
//! `local-file-system`), typed. Their schemas are the server's
//! ([`SchemaOrigin::Server`]): saving one never registers a schema of its own.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Block, SchemaOrigin, SecretStr, SecretValue};
use crate::Error;

/// Prefect's `Secret` block (`secret`): a secret string or JSON value, as Python's
/// `prefect.blocks.system.Secret` saves and loads it.
///
/// ```no_run
/// # async fn demo(client: prefect_client::Client) -> Result<(), prefect_client::Error> {
/// use prefect_client::resources::blocks::Secret;
///
/// client.blocks().save("openai-key", &Secret::new("sk-123")).await?;
/// let key: Secret = client.blocks().load("openai-key").await?;
/// let key: String = key.get()?; // Python: Secret.load("openai-key").get()
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct Secret {
    /// The secret.
    pub value: SecretValue,
}

impl Secret {
    /// A secret string.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret {
            value: SecretValue::string(value),
        }
    }

    /// A secret JSON value (a map of credentials, say).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `value` cannot be serialized to JSON.
    pub fn json(value: &impl Serialize) -> Result<Secret, Error> {
        Ok(Secret {
            value: SecretValue::json(value)?,
        })
    }

    /// The secret as `T`, as Python's `Secret.get()` reads it (a string holding JSON is that
    /// JSON); see [`SecretValue::expose_as`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the secret is not a `T` (its value is not shown).
    pub fn get<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        self.value.expose_as()
    }
}

impl Block for Secret {
    const TYPE_SLUG: &'static str = "secret";
    const TYPE_NAME: &'static str = "Secret";
    const SCHEMA_ORIGIN: SchemaOrigin = SchemaOrigin::Server;
}

/// The request method of a [`Webhook`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum WebhookMethod {
    /// `GET`.
    Get,
    /// `POST` (the default).
    #[default]
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
}

/// Prefect's `Webhook` block (`webhook`): a URL to call, as Python's
/// `prefect.blocks.webhook.Webhook` saves it. The URL and the headers' values are secrets.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct Webhook {
    /// The request method (default `POST`).
    #[serde(default)]
    pub method: WebhookMethod,
    /// The URL to call.
    pub url: SecretStr,
    /// Headers sent with the request.
    #[serde(default)]
    pub headers: BTreeMap<String, SecretStr>,
    /// Whether the URL may be a private address (default true).
    #[serde(default = "yes")]
    pub allow_private_urls: bool,
    /// Whether the server's certificate is verified (default true).
    #[serde(default = "yes")]
    pub verify: bool,
}

fn yes() -> bool {
    true
}

impl Webhook {
    /// A webhook that POSTs to `url`, with no headers.
    pub fn new(url: impl Into<SecretStr>) -> Webhook {
        Webhook {
            method: WebhookMethod::Post,
            url: url.into(),
            headers: BTreeMap::new(),
            allow_private_urls: true,
            verify: true,
        }
    }
}

impl Block for Webhook {
    const TYPE_SLUG: &'static str = "webhook";
    const TYPE_NAME: &'static str = "Webhook";
    const SCHEMA_ORIGIN: SchemaOrigin = SchemaOrigin::Server;
}

/// Prefect's `LocalFileSystem` block (`local-file-system`): a directory results and files are
/// written to, as Python's `prefect.filesystems.LocalFileSystem` saves it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct LocalFileSystem {
    /// The directory to write to (default: the working directory of whoever uses it).
    #[serde(default)]
    pub basepath: Option<String>,
}

impl LocalFileSystem {
    /// A file system rooted at `basepath`.
    pub fn new(basepath: impl Into<String>) -> LocalFileSystem {
        LocalFileSystem {
            basepath: Some(basepath.into()),
        }
    }
}

impl Block for LocalFileSystem {
    const TYPE_SLUG: &'static str = "local-file-system";
    const TYPE_NAME: &'static str = "Local File System";
    const SCHEMA_ORIGIN: SchemaOrigin = SchemaOrigin::Server;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_blocks_write_the_data_pythons_classes_write() {
        let mut hook = Webhook::new("https://hooks.example/x");
        hook.headers
            .insert("Authorization".into(), SecretStr::new("Bearer t"));
        assert_eq!(
            serde_json::to_value(&hook).unwrap(),
            serde_json::json!({
                "method": "POST",
                "url": "https://hooks.example/x",
                "headers": { "Authorization": "Bearer t" },
                "allow_private_urls": true,
                "verify": true,
            })
        );
        let shown = format!("{hook:?}");
        assert!(
            !shown.contains("hooks.example") && !shown.contains("Bearer"),
            "{shown}"
        );
        // What Python's Webhook saves with only a URL.
        let back: Webhook = serde_json::from_value(serde_json::json!({ "url": "u", "headers": {} })).unwrap();
        assert_eq!((back.method, back.verify), (WebhookMethod::Post, true));
        assert_eq!(
            serde_json::to_value(LocalFileSystem::new("/data")).unwrap(),
            serde_json::json!({ "basepath": "/data" })
        );
        assert_eq!(
            serde_json::to_value(Secret::new("s")).unwrap(),
            serde_json::json!({ "value": "s" })
        );
    }
}
