"""The API's HTTP/1.1 protocol: uvicorn's h11 protocol, guarded against slow clients.

uvicorn (0.54, h11; httptools is not installed) has no deadline for a request to
arrive: its keep-alive timer runs only after a response and stops at the first
byte received, so a client that sends nothing, or trickles its headers a byte at
a time, holds its connection (a file descriptor and some memory) for ever. A few
thousand such clients (slowloris) exhaust the server. This protocol adds:

- a header timeout (`CREDITHUB_API_HEADER_TIMEOUT_SECONDS`, 5 s): a connection
  must deliver a complete request head within it of opening, or, on a kept-alive
  connection, of the next request's first byte (until that byte, uvicorn's own
  keep-alive timeout applies);
- a request timeout (`CREDITHUB_API_REQUEST_TIMEOUT_SECONDS`, 30 s), from the
  same start to the last byte of the body. The hub's bodies are small JSON; a
  body trickled after a quick head is not the application's problem to bound,
  since it would sit in a worker awaiting `request.body()`;
- a connection cap (`CREDITHUB_API_MAX_CONNECTIONS`, 2,000 per process): at the
  cap, a new connection displaces the oldest one still waiting for its request
  head (an attacker's or an idle keep-alive, which a client simply reopens), so
  that clients that ask promptly keep being served while the slow ones are
  pushed out; if every connection is busy with a request, the new one is
  answered 503 and closed. Either way the file descriptors stay bounded.

A timed-out connection is closed without an answer (there is no one to read it).
And when the crowd has gone, the process returns the memory it held to the
system (`release_memory`), which CPython's and glibc's allocators otherwise keep.

It runs on uvloop (credithub/serve.py): on asyncio's own loop, accepting and
closing a reconnecting crowd's connections in Python kept new clients waiting.

Pass the class to uvicorn (`uvicorn.run(..., http=GuardedH11Protocol)`); limits
left unset on the class are read from the settings in each worker process.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import json
import resource
import weakref
from typing import Any, ClassVar

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from hub.settings import get_settings

__all__ = ["GuardedH11Protocol", "raise_fd_limit", "release_memory"]

# Like every error of the hub, a problem+json (CONTRACT.md §1), with Retry-After.
_PROBLEM = json.dumps(
    {
        "type": "https://credithub.dev/problems/too_many_connections",
        "title": "Too many connections",
        "status": 503,
        "code": "too_many_connections",
        "detail": "every connection of this server is busy; retry in a second",
    }
).encode()
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n"
    b"retry-after: 1\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
    % (len(_PROBLEM), _PROBLEM)
)

# Per server (its shared state): the connections waiting for a request head,
# oldest first (a dict keeps insertion order), so the cap can displace the oldest.
_waiting: weakref.WeakKeyDictionary[ServerState, dict[GuardedH11Protocol, None]] = (
    weakref.WeakKeyDictionary()
)
_crowded = False  # this process has had a crowd since it last released memory


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the header and request deadlines and the cap."""

    # None: from the settings. Tests set small values on a subclass.
    header_timeout: ClassVar[float | None] = None
    request_timeout: ClassVar[float | None] = None
    max_connections: ClassVar[int | None] = None
    # A crowd: this many connections at once. When it thins out below a tenth of
    # that, the memory it took is released (rarely, and only after a crowd).
    crowd: ClassVar[int] = 500

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = get_settings()
        self._header_timeout = self.header_timeout or settings.api_header_timeout_seconds
        self._request_timeout = self.request_timeout or settings.api_request_timeout_seconds
        self._max_connections = self.max_connections or settings.api_max_connections
        self._waiting = _waiting.setdefault(server_state, {})
        self._deadline: asyncio.TimerHandle | None = None
        self._body_due = False  # the deadline is the whole request's, not the head's
        self._started = 0.0  # when the wait for the current request began (loop time)
        self._refused = False

    # --- the connection cap ------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        global _crowded
        if len(self.connections) >= self._max_connections and not self._displace_oldest():
            self._refused = True
            self.transport = transport
            transport.write(REFUSAL)
            transport.close()
            return
        super().connection_made(transport)
        if len(self.connections) >= self.crowd:
            _crowded = True
        self._await_request()

    def _displace_oldest(self) -> bool:
        """Close the connection that has waited longest for a request head, if any."""
        oldest = next(iter(self._waiting), None)
        if oldest is None:
            return False
        oldest._close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        global _crowded
        if self._refused:
            return
        self._stop_waiting()
        super().connection_lost(exc)
        if _crowded and len(self.connections) < self.crowd // 10:
            _crowded = False
            # A second later: the rest of the crowd is usually leaving too.
            self.loop.call_later(1.0, release_memory)

    # --- the deadlines -----------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        # The first byte of a kept-alive connection's next request starts its clock
        # (uvicorn's keep-alive timer, which bounded the idle wait, stops on it).
        if self._deadline is None and self._between_requests():
            self._await_request()
        super().data_received(data)

    def handle_events(self) -> None:
        # Called on new data and, for pipelined requests, after each response.
        super().handle_events()
        state = self.conn.their_state
        if state is h11.IDLE:
            return  # still waiting for a head: the deadline, if any, runs on
        self._waiting.pop(self, None)
        if state is h11.SEND_BODY:
            if self._body_due:
                return
            if self._deadline is None:  # a pipelined head, parsed from the buffer
                self._started = self.loop.time()
            self._set_deadline(self._started + self._request_timeout)
            self._body_due = True
        else:  # the whole request is in (or the connection is ending)
            self._stop_waiting()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Idle until the next request: displaceable by the cap, but timed by
        # uvicorn's keep-alive timeout until its first byte (data_received).
        if not self.transport.is_closing() and self._between_requests():
            self._waiting[self] = None

    def _between_requests(self) -> bool:
        return self.conn.their_state is h11.IDLE and (
            self.cycle is None or self.cycle.response_complete
        )

    def _await_request(self) -> None:
        self._started = self.loop.time()
        self._waiting.pop(self, None)
        self._waiting[self] = None  # to the end: the newest waiter
        self._set_deadline(self._started + self._header_timeout)
        self._body_due = False

    def _set_deadline(self, when: float) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_at(when, self._close)

    def _stop_waiting(self) -> None:
        self._waiting.pop(self, None)
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._body_due = False

    def _close(self) -> None:
        """Too slow (or displaced): close without answering."""
        self._stop_waiting()
        if not self.transport.is_closing():
            self.transport.close()


def release_memory() -> None:
    """Return freed memory to the system: collect cycles, then ask glibc to give
    back its free pages (`malloc_trim`; a no-op where there is no glibc)."""
    gc.collect()
    if _malloc_trim is not None:
        _malloc_trim(0)


def _find_malloc_trim() -> Any:
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc only
    except (OSError, TypeError, AttributeError):
        return None


_malloc_trim = _find_malloc_trim()


def raise_fd_limit(connections: int) -> None:
    """Raise this process's soft limit on open files to fit `connections` (and some
    to spare), as far as the hard limit allows: at the limit, accepting fails and
    asyncio stops listening for a second."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, ceiling), hard))
