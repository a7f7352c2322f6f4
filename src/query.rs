//! What the list calls take, by what they list: each `…Query` is the body of one list
//! operation (its filters, sort, `limit` and `offset`), and the `…Filter` types beside it are
//! the criteria inside. All are the generated types of [`types`](crate::types), named for
//! users; build them as struct literals with `..Default::default()`.
//!
//! ```
//! use prefect_client::query::{FlowRunFilter, FlowRunFilterTags, FlowRunQuery};
//!
//! let nightly = FlowRunQuery {
//!     flow_runs: Some(FlowRunFilter {
//!         tags: Some(FlowRunFilterTags { all: Some(vec!["nightly".into()]), ..Default::default() }),
//!         ..Default::default()
//!     }),
//!     ..Default::default()
//! };
//! # let _ = nightly;
//! ```

/// The body of the list call of global concurrency limits: its filters, sort, `limit` and `offset`.
pub type GlobalConcurrencyLimitQuery = crate::types::ReadAllConcurrencyLimitsV2Body;
/// The body of the list call of block documents: its filters, sort, `limit` and `offset`
/// (`include_secrets` is set by the call's `Secrets` argument).
pub type BlockDocumentQuery = crate::types::ReadBlockDocumentsBody;
/// The body of the list call of block schemas: its filters, `limit` and `offset`.
pub type BlockSchemaQuery = crate::types::ReadBlockSchemasBody;
/// The body of the list call of block types: its filters, `limit` and `offset`.
pub type BlockTypeQuery = crate::types::ReadBlockTypesBody;
/// The body of the list call of artifacts: its filters, sort, `limit` and `offset`.
pub type ArtifactQuery = crate::types::ReadArtifactsBody;
/// The body of the list call of automations: its filters, sort, `limit` and `offset`.
pub type AutomationQuery = crate::types::ReadAutomationsBody;
/// The body of the list call of tag concurrency limits: its filters, sort, `limit` and `offset`.
pub type ConcurrencyLimitQuery = crate::types::ReadConcurrencyLimitsBody;
/// The body of the list call of deployments: its filters, sort, `limit` and `offset`.
pub type DeploymentQuery = crate::types::ReadDeploymentsBody;
/// The body of the list call of events: its filters, sort, `limit` and `offset`.
pub type EventQuery = crate::types::ReadEventsBody;
/// The body of the list call of flow runs: its filters, sort, `limit` and `offset`.
pub type FlowRunQuery = crate::types::ReadFlowRunsBody;
/// The body of the list call of flows: its filters, sort, `limit` and `offset`.
pub type FlowQuery = crate::types::ReadFlowsBody;
/// The body of the list call of logs: its filters, sort, `limit` and `offset`.
pub type LogQuery = crate::types::ReadLogsBody;
/// The body of the list call of task runs: its filters, sort, `limit` and `offset`.
pub type TaskRunQuery = crate::types::ReadTaskRunsBody;
/// The body of the list call of variables: its filters, sort, `limit` and `offset`.
pub type VariableQuery = crate::types::ReadVariablesBody;
/// The body of the list call of work pools: its filters, sort, `limit` and `offset`.
pub type WorkPoolQuery = crate::types::ReadWorkPoolsBody;
/// The body of the list call of a pool's work queues: its filters, sort, `limit` and `offset`.
pub type WorkQueueQuery = crate::types::ReadWorkQueuesInWorkPoolsBody;

pub use crate::types::{
    ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey, ArtifactSort, AutomationFilter,
    AutomationFilterName, AutomationFilterTags, AutomationSort, DeploymentFilter, DeploymentFilterId,
    DeploymentFilterName, DeploymentFilterTags, DeploymentSort, EventFilter, EventNameFilter,
    EventOccurredFilter, EventOrder, EventRelatedFilter, EventResourceFilter, FlowFilter, FlowFilterId,
    FlowFilterName, FlowFilterTags, FlowRunFilter, FlowRunFilterDeploymentId, FlowRunFilterId,
    FlowRunFilterName, FlowRunFilterState, FlowRunFilterStateName, FlowRunFilterStateType, FlowRunFilterTags,
    FlowRunSort, FlowSort, LogFilter, LogFilterFlowRunId, LogFilterLevel, LogFilterTaskRunId,
    LogFilterTimestamp, LogSort, TaskRunFilter, TaskRunFilterFlowRunId, TaskRunFilterName,
    TaskRunFilterState, TaskRunFilterTags, TaskRunSort, VariableFilter, VariableFilterName,
    VariableFilterTags, VariableSort, WorkPoolFilter, WorkPoolFilterName, WorkQueueFilter,
    WorkQueueFilterName,
};
pub use crate::types::{
    BlockDocumentFilter, BlockDocumentFilterBlockTypeId, BlockDocumentFilterId, BlockDocumentFilterName,
    BlockDocumentSort, BlockSchemaFilter, BlockSchemaFilterBlockTypeId, BlockSchemaFilterVersion,
    BlockTypeFilter, BlockTypeFilterName, BlockTypeFilterSlug,
};

impl BlockDocumentQuery {
    /// The documents of the block type with this slug (`secret`, `webhook`, …).
    ///
    /// ```
    /// use prefect_client::query::BlockDocumentQuery;
    ///
    /// let secrets = BlockDocumentQuery::of_type("secret");
    /// # let _ = secrets;
    /// ```
    pub fn of_type(block_type_slug: &str) -> BlockDocumentQuery {
        BlockDocumentQuery {
            block_types: Some(BlockTypeFilter {
                slug: Some(BlockTypeFilterSlug {
                    any: Some(vec![block_type_slug.to_string()]),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}
