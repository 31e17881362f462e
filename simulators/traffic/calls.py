"""One call to the hub or the credit database, as a partner's system makes it:
retried on 429, 5xx or no answer, under the same Idempotency-Key each time."""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass
from typing import Any

import httpx

from simulators.hospital_books import Stats

log = logging.getLogger("simulators.hospital")
ATTEMPTS = 4


@dataclass
class Answer:
    status: int  # 0: no answer (connection failed or timed out)
    body: dict[str, Any]


def _retry_wait(response: httpx.Response | None, attempt: int) -> float:
    if response is not None and response.headers.get("retry-after", "").isdigit():
        return min(10.0, float(response.headers["retry-after"]))
    return min(8.0, 0.25 * 2**attempt) * random.uniform(0.5, 1.0)  # jitter


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class Caller:
    """Calls counted by kind and outcome; a stop event cuts the waits between retries short."""

    def __init__(self, stats: Stats, stop: threading.Event, timeout_s: float = 15) -> None:
        self.http = httpx.Client(timeout=timeout_s)
        self.stats, self.stop = stats, stop

    def __call__(
        self, kind: str, method: str, url: str, key: str, body: Any = None, idem: str | None = None
    ) -> Answer:
        headers = {"Authorization": f"Bearer {key}"}
        if idem is not None:
            headers["Idempotency-Key"] = idem
        for attempt in range(ATTEMPTS):
            response: httpx.Response | None = None
            try:
                response = self.http.request(method, url, json=body, headers=headers)
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            else:
                outcome = str(response.status_code)
                if response.status_code != 429 and response.status_code < 500:
                    self.stats.count(kind, outcome)
                    return Answer(response.status_code, _json(response))
            self.stats.count(kind, outcome)
            if attempt == ATTEMPTS - 1 or self.stop.wait(_retry_wait(response, attempt)):
                break
        log.warning("hospital simulator: %s gave up after %s", kind, outcome)
        return Answer(response.status_code if response is not None else 0, {})

    def close(self) -> None:
        self.http.close()
