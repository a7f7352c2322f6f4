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

pub use crate::types::{
    ReadAllConcurrencyLimitsV2Body as GlobalConcurrencyLimitQuery, ReadArtifactsBody as ArtifactQuery,
    ReadConcurrencyLimitsBody as ConcurrencyLimitQuery, ReadDeploymentsBody as DeploymentQuery,
    ReadEventsBody as EventQuery, ReadFlowRunsBody as FlowRunQuery, ReadFlowsBody as FlowQuery,
    ReadLogsBody as LogQuery, ReadTaskRunsBody as TaskRunQuery, ReadVariablesBody as VariableQuery,
    ReadWorkPoolsBody as WorkPoolQuery, ReadWorkQueuesInWorkPoolsBody as WorkQueueQuery,
};

pub use crate::types::{
    ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey, ArtifactSort, DeploymentFilter,
    DeploymentFilterId, DeploymentFilterName, DeploymentFilterTags, DeploymentSort, EventFilter,
    EventNameFilter, EventOccurredFilter, EventOrder, EventRelatedFilter, EventResourceFilter, FlowFilter,
    FlowFilterId, FlowFilterName, FlowFilterTags, FlowRunFilter, FlowRunFilterDeploymentId, FlowRunFilterId,
    FlowRunFilterName, FlowRunFilterState, FlowRunFilterStateName, FlowRunFilterStateType, FlowRunFilterTags,
    FlowRunSort, FlowSort, LogFilter, LogFilterFlowRunId, LogFilterLevel, LogFilterTaskRunId,
    LogFilterTimestamp, LogSort, TaskRunFilter, TaskRunFilterFlowRunId, TaskRunFilterName,
    TaskRunFilterState, TaskRunFilterTags, TaskRunSort, VariableFilter, VariableFilterName,
    VariableFilterTags, VariableSort, WorkPoolFilter, WorkPoolFilterName, WorkQueueFilter,
    WorkQueueFilterName,
};
