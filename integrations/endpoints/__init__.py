"""The partner API (FastAPI): routes parse, call `hub`, and shape the answer."""
