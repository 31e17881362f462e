"""Real servers in threads, for tests that need real HTTP: the hub, the stand-ins."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from credithub.threaded_server import free_port, serve
from hub.settings import Settings

__all__ = ["free_port", "live_server", "serve"]


@contextmanager
def live_server(settings: Settings) -> Iterator[str]:
    """The hub's API on a free loopback port; yields its base URL."""
    from integrations.endpoints.app import create_app

    with serve(create_app(settings)) as base:
        yield base
