//! Where the worker binary is: the child process that tests start to use slots from another
//! process (contention between processes, a holder killed with SIGKILL, a program that ends
//! while holding).

use std::path::PathBuf;

use crate::{Error, harness};

/// The name of the test kit's worker binary (`src/bin/prefect-testkit-worker.rs`).
pub const WORKER_BINARY: &str = "prefect-testkit-worker";

/// The path of the worker binary built beside the running test (`target/<profile>/`).
///
/// `cargo test` at the workspace root builds it; when it is missing the error names the command
/// that builds it.
///
/// # Errors
/// [`Error::Setup`](crate::Error::Setup) when the running program's path cannot be found, or the
/// binary is not built beside it (the error names where it looked and the command to run).
pub fn worker_binary() -> Result<PathBuf, Error> {
    let exe =
        std::env::current_exe().map_err(|e| harness(format!("cannot find the running test's path: {e}")))?;
    // Tests run from target/<profile>/deps/, examples and benches from target/<profile>/ or
    // target/<profile>/examples/.
    let candidates = exe
        .ancestors()
        .skip(1)
        .take(3)
        .map(|dir| dir.join(WORKER_BINARY))
        .collect::<Vec<_>>();
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .ok_or_else(|| {
            harness(format!(
                "the worker binary {WORKER_BINARY} is not built (looked in {}); run \
             `cargo build -p prefect-testkit --bin {WORKER_BINARY}` or `cargo test` at the workspace root",
                candidates
                    .iter()
                    .filter_map(|p| p.parent())
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}
