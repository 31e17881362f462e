"""A flow run in a process of its own that kills itself with SIGKILL at a chosen
point: the flow process of the crash tests (tests/crashing.py starts it).

    python -m tests.crash_child FLOW KILL_AT PARAMS_JSON PARTNER_URLS

Points of three kinds are counted, each kind on its own: `commit` (just before
each database commit), `request` (just before a request to a partner's system
is sent) and `answer` (just after its answer arrived, before the hub has
recorded it). At KILL_AT, `<kind>:<n>`, the process sends itself SIGKILL: no
`finally`, no atexit, no flush — as `kill -9` leaves it. `none` never kills. A
run that ends prints how many points of each kind it passed.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import threading
from typing import Any

import urllib3
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

FLOWS = {
    "settlement": "flows.medical.settlement:settle",
    "enrollment": "flows.medical.enrollment:enroll_pending",
    "webhooks": "flows.webhooks:deliver_events",
    "subsidies": "flows.loans.subsidies:grant_subsidies",
    "delinquency": "flows.loans.delinquency:check_delinquency",
}


class KillPoints:
    def __init__(self, kill_at: str, partner_urls: list[str], database_url: str):
        kind, _, n = kill_at.partition(":")
        self.kill_kind, self.kill_n = kind, int(n or 0)
        self.passed = {"commit": 0, "request": 0, "answer": 0}
        self._partners = tuple(url.rstrip("/") for url in partner_urls if url)
        self._database = database_url
        self._lock = threading.Lock()

    def point(self, kind: str) -> None:
        with self._lock:
            self.passed[kind] += 1
            if kind == self.kill_kind and self.passed[kind] == self.kill_n:
                os.kill(os.getpid(), signal.SIGKILL)

    def arm(self) -> None:
        @event.listens_for(Engine, "commit")
        def before_commit(conn: Connection) -> None:
            if conn.engine.url.render_as_string(hide_password=False) == self._database:
                self.point("commit")

        # The partners are called through urllib3 (integrations/partner_client.py);
        # Prefect's own API through httpx, which this leaves alone.
        real = urllib3.HTTPConnectionPool.urlopen
        points = self

        def urlopen(pool: urllib3.HTTPConnectionPool, *args: Any, **kwargs: Any) -> Any:
            if not f"{pool.scheme}://{pool.host}:{pool.port}".startswith(points._partners):
                return real(pool, *args, **kwargs)
            points.point("request")
            response = real(pool, *args, **kwargs)
            points.point("answer")
            return response

        urllib3.HTTPConnectionPool.urlopen = urlopen  # type: ignore[method-assign]


def main() -> None:
    name, kill_at, params, partner_urls = sys.argv[1:5]
    from hub.settings import get_settings

    points = KillPoints(kill_at, partner_urls.split(","), get_settings().sqlalchemy_url())
    points.arm()
    module, _, attribute = FLOWS[name].partition(":")
    flow = getattr(importlib.import_module(module), attribute)
    result = flow(**json.loads(params))
    print(json.dumps({"points": points.passed, "result": result}, default=str))


if __name__ == "__main__":
    main()
