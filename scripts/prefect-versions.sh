# The pinned Prefect server and its companions; sourced by the scripts and read by src/local_server.rs.
PREFECT_VERSION=3.8.8
FASTAPI_VERSION=0.150.0
