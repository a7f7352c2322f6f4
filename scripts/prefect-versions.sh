# The pinned Prefect server and its companions; sourced by the scripts and read by prefect-testkit/src/venv.rs.
PREFECT_VERSION=3.8.8
FASTAPI_VERSION=0.150.0
# Its server's scheduler fails with SQLAlchemy 2.1 (no schedule makes runs).
SQLALCHEMY_REQUIREMENT='sqlalchemy[asyncio]>=2.0,<2.1'
