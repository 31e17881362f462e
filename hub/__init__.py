"""The hub's own rules and use cases, over a database session.

Nothing here imports Prefect, FastAPI or httpx: the same use case serves the
API, a flow, the command line and a test.
"""
