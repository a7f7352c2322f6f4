//! placeholder
#[derive(Clone, Debug, Default)]
pub struct Transport;
impl progenitor_client::ClientHooks<Transport> for crate::generated::Client {}
