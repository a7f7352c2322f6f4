pub mod generated;
pub mod transport;
