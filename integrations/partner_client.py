"""The one way the hub calls a partner system: timeouts, retries, idempotency keys, typed answers.

Every outbound client (credit database, bank, hospital) is a thin subclass of
`PartnerClient`. A call is one logical request: it is retried with
exponential backoff and jitter on 429, 5xx, connection errors and timeouts,
within an attempt budget and a total deadline, and every attempt carries the
same Idempotency-Key, so a request that reached the partner before the
connection broke cannot take effect twice. Answers are parsed into pydantic
models; failures become `Rejected`, `Unavailable` or `BadResponse`.

Calls go through urllib3: under sixteen threads a call costs a third of the
CPU httpx takes (0.22 against 0.64 ms on loopback), and enrolment at launch-day
scale is bound by exactly that.

Identity numbers travel in some paths (`/persons/{id_number}`): every path
this module logs is masked, and so are the request lines urllib3 itself logs.
"""

from __future__ import annotations

import logging
import re
import time
import urllib.request
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

import certifi
import urllib3
from pydantic import TypeAdapter, ValidationError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from integrations.errors import BadResponse, Rejected, Unavailable
from models.core.partner_errors import CALL_DEADLINE_SECONDS

T = TypeVar("T")
log = logging.getLogger("credithub.partners")


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait for a connection, and then for each read of the answer."""

    connect: float = 2.0
    read: float = 5.0


DEFAULT_TIMEOUT = Timeouts()
# Identity numbers (GB 11643) and firms' credit codes (GB 32100, letters too; any
# case, as a path may carry it): 18 characters, shown as the first and last four.
_ID_NUMBER = re.compile(
    r"(?<![0-9A-Za-z])([0-9A-HJ-NP-RTUW-Ya-hj-np-rtuw-y]{4})[0-9A-HJ-NP-RTUW-Ya-hj-np-rtuw-y]{10}"
    r"([0-9A-HJ-NP-RTUW-Ya-hj-np-rtuw-y]{3}[0-9A-HJ-NP-RTUW-Ya-hj-np-rtuw-yXx])(?![0-9A-Za-z])"
)
# Failures where the request may not have been seen, or the partner may do better soon,
# by the names the hub reports them under (most specific first: a refused connection is
# a ConnectTimeoutError to urllib3).
_TRANSIENT_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (urllib3.exceptions.NewConnectionError, "ConnectError"),
    (urllib3.exceptions.ConnectTimeoutError, "ConnectTimeout"),
    (urllib3.exceptions.ReadTimeoutError, "ReadTimeout"),
    (urllib3.exceptions.TimeoutError, "Timeout"),
    (urllib3.exceptions.SSLError, "ConnectError"),
    (urllib3.exceptions.ProxyError, "ConnectError"),
    (urllib3.exceptions.ProtocolError, "RemoteProtocolError"),
    (urllib3.exceptions.ClosedPoolError, "ConnectError"),  # its pool made way for another
)


def mask_identity_numbers(text: str) -> str:
    """`/persons/350102199001011234` -> `/persons/3501**********1234`; the same for a
    firm's code: `/firms/91350200MA2Y0K1X5F` -> `/firms/9135**********1X5F`."""
    return _ID_NUMBER.sub(lambda m: f"{m.group(1)}**********{m.group(2)}", text)


def segment(value: str) -> str:
    """A value as one path segment: a `/` or `?` in an id must not change the path."""
    return quote(value, safe="")


class _MaskIdentityNumbers(logging.Filter):
    """urllib3 logs every request line at DEBUG (httpx at INFO), path included: mask it
    before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_identity_numbers(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


def _protect_request_logs() -> None:
    for name in ("urllib3.connectionpool", "httpx"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _MaskIdentityNumbers) for f in logger.filters):
            logger.addFilter(_MaskIdentityNumbers())


_protect_request_logs()


class PartnerPool:
    """The connections the hub's calls to partners share: up to `connections` kept open
    per partner system (more are opened, and closed after, when a burst needs them),
    certificates checked against certifi's authorities, and the proxy the environment
    names (HTTP_PROXY, HTTPS_PROXY, NO_PROXY) used as httpx would. Thread-safe."""

    def __init__(self, connections: int = 64) -> None:
        options: dict[str, Any] = {
            "num_pools": 256,  # partner systems, webhook hosts among them
            "maxsize": connections,
            "block": False,
            "ca_certs": certifi.where(),
        }
        self._direct = urllib3.PoolManager(**options)
        self._proxies = {
            scheme: urllib3.proxy_from_url(url, **options)
            for scheme, url in urllib.request.getproxies().items()
            if scheme in ("http", "https")
        }

    def request(self, method: str, url: str, **options: Any) -> urllib3.BaseHTTPResponse:
        where = urllib3.util.parse_url(url)
        proxy = self._proxies.get(where.scheme or "")
        if proxy is None or urllib.request.proxy_bypass(where.host or ""):
            return self._direct.request(method, url, **options)
        return proxy.request(method, url, **options)

    def clear(self) -> None:
        for pool in (self._direct, *self._proxies.values()):
            pool.clear()

    def __enter__(self) -> PartnerPool:
        return self

    def __exit__(self, *_: object) -> None:
        self.clear()


def partner_pool(connections: int = 64) -> PartnerPool:
    return PartnerPool(connections)


@dataclass(frozen=True)
class RetryPolicy:
    """At most `attempts` tries, waits doubling from `first_wait_s` up to `max_wait_s`
    (plus up to `first_wait_s` of jitter), and never past `deadline_s` in all."""

    attempts: int = 4
    first_wait_s: float = 0.05
    max_wait_s: float = 1.0
    deadline_s: float = CALL_DEADLINE_SECONDS


class _Transient(Exception):
    """One attempt failed in a way worth retrying."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class PartnerClient:
    """Base of the outbound clients: one partner system at `base_url`, called with `api_key`."""

    partner: ClassVar[str] = "partner"

    def __init__(
        self,
        http: PartnerPool,
        base_url: str,
        api_key: str,
        *,
        timeout: Timeouts = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = timeout
        self._retry = retry or RetryPolicy()

    def _lookup(self, operation: str, path: str, answer: TypeAdapter[T]) -> T | None:
        """GET a record; None when the partner does not know it (404 is an answer)."""
        response = self._exchange(operation, "GET", path, None, None, absent_ok=True)
        return None if response is None else self._parse(operation, response, answer)

    def _call(
        self,
        operation: str,
        method: str,
        path: str,
        answer: TypeAdapter[T],
        *,
        body: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> T:
        response = self._exchange(operation, method, path, body, idempotency_key, absent_ok=False)
        assert response is not None  # only lookups answer None
        return self._parse(operation, response, answer)

    def _exchange(
        self,
        operation: str,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        idempotency_key: str | None,
        *,
        absent_ok: bool,
    ) -> urllib3.BaseHTTPResponse | None:
        """Send with retries; the final answer, None for an allowed 404, or an error."""
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        policy = self._retry
        retrying = Retrying(
            stop=stop_after_attempt(policy.attempts) | stop_before_delay(policy.deadline_s),
            wait=wait_exponential_jitter(
                multiplier=policy.first_wait_s, max=policy.max_wait_s, jitter=policy.first_wait_s
            ),
            retry=retry_if_exception_type(_Transient),
            before_sleep=lambda state: self._note_retry(operation, method, path, state),
            reraise=True,
        )
        deadline = time.monotonic() + policy.deadline_s
        try:
            response = retrying(self._attempt, method, path, body, headers, deadline)
        except _Transient as exc:
            attempts = retrying.statistics.get("attempt_number", policy.attempts)
            log.warning(
                "%s %s %s unavailable after %d attempt(s): %s",
                self.partner,
                method,
                mask_identity_numbers(path),
                attempts,
                exc.cause,
            )
            raise Unavailable(self.partner, operation, attempts, exc.cause) from exc.__cause__
        status = response.status
        if 200 <= status < 300:
            return response
        if status == 404 and absent_ok:
            return None
        if 400 <= status < 500:
            raise Rejected(self.partner, operation, status, _body_of(response))
        raise BadResponse(self.partner, operation, status, "unexpected status")

    def _attempt(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        headers: dict[str, str],
        deadline: float,
    ) -> urllib3.BaseHTTPResponse:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Transient("deadline passed")
        try:
            response = self._http.request(
                method,
                f"{self._base_url}{path}",
                json=body,
                headers=headers,
                timeout=_within(self._timeout, left),
                retries=False,  # the retries are ours, under the policy and the deadline
                redirect=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            cause = next((name for kind, name in _TRANSIENT_ERRORS if isinstance(exc, kind)), None)
            if cause is None:
                raise
            raise _Transient(cause) from exc
        if response.status == 429 or response.status >= 500:
            raise _Transient(f"HTTP {response.status}")
        return response

    def _note_retry(self, operation: str, method: str, path: str, state: RetryCallState) -> None:
        failure = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.info(
            "%s %s %s attempt %d failed (%s); retrying in %.2f s",
            self.partner,
            method,
            mask_identity_numbers(path),
            state.attempt_number,
            failure,
            wait,
        )

    def _parse(
        self, operation: str, response: urllib3.BaseHTTPResponse, answer: TypeAdapter[T]
    ) -> T:
        try:
            data = response.json()
        except ValueError as exc:
            raise BadResponse(self.partner, operation, response.status, "not JSON") from exc
        try:
            return answer.validate_python(data)
        except ValidationError as exc:
            # Field locations only: the offending values may be personal data.
            where = ", ".join(".".join(map(str, e["loc"])) or "(root)" for e in exc.errors())
            reason = f"does not match the expected shape at {where}"
            raise BadResponse(self.partner, operation, response.status, reason) from None


def _within(timeout: Timeouts, left: float) -> urllib3.Timeout:
    """The configured timeouts, none longer than what is left of the deadline."""
    return urllib3.Timeout(connect=min(timeout.connect, left), read=min(timeout.read, left))


def _body_of(response: urllib3.BaseHTTPResponse) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.data[:2000].decode("utf-8", "replace")[:500]
