# The pinned Prefect server and its companions; sourced by the scripts and read by prefect-testkit/src/venv.rs.
PREFECT_VERSION=3.8.8
FASTAPI_VERSION=0.150.0
