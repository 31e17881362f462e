"""The path every partner request takes, in the contract's order of errors.

401 authentication (unknown keys looked up at a rate per client address) →
429 rate limit → 403 kind → 400 Idempotency-Key → 413/415 body → 422
validation → the use case (404, 409, 402) inside one transaction together with
its idempotency record, in one of the partner's few slots for database work.
The hub runs every transaction: a use case is handed the open one, and a route
may first do work that must not hold one open (`before`: a call to another system).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from hub.context import HubContext
from hub.core import clock, idempotency, partners
from hub.core.db import Transaction, run_read
from hub.core.errors import FieldError, Forbidden, HubError, Invalid, NotFound, Unauthenticated
from hub.core.partners import Caller
from hub.core.personal_data import Vault
from hub.settings import Settings
from integrations.endpoints.guards import (
    Busy,
    ConcurrencyLimiter,
    ConcurrencyLimits,
    KeyCache,
    RateLimiter,
    RateLimits,
)
from integrations.endpoints.problems import (
    IdempotencyKeyInvalid,
    IdempotencyKeyMissing,
    IdempotencyKeyReused,
    InternalError,
    PayloadTooLarge,
    RateLimited,
    RequestInProgress,
    UnsupportedMediaType,
    problem_response,
    problem_text,
    status_of,
    validation_error,
)
from integrations.endpoints.shared_guards import (
    SharedConcurrencyLimiter,
    SharedRateLimiter,
    SharedRedis,
)

log = logging.getLogger("credithub.api")

MAX_BODY = 1024 * 1024
_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")
_CHARSET = re.compile(r"charset\s*=\s*\"?([^\";\s]+)", re.IGNORECASE)
_RETRIES = 3


@dataclass(frozen=True)
class Call:
    """One authenticated, validated request, as a use case needs it."""

    caller: Caller
    params: dict[str, str]
    query: QueryParams
    body: Any
    now: datetime
    settings: Settings
    vault: Vault
    idempotency_key: str | None = None
    prepared: Any = None  # what the route's `before` step returned


Handler = Callable[[Call, Transaction], tuple[int, Any]]
Before = Callable[[Call, HubContext], Any]


class _DuplicateKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def parse_json(raw: bytes) -> Any:
    """A request body as the contract reads it: UTF-8 JSON, each key once (§1).

    Not UTF-8 (UTF-16, a byte-order mark) or not JSON is a 415; a key twice in
    one object, where a parser would silently keep the last, and a number too
    long to parse are 422s.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnsupportedMediaType("the body is not UTF-8; send JSON in UTF-8") from exc
    if text.startswith("\ufeff"):
        raise UnsupportedMediaType("the body starts with a byte-order mark; send UTF-8 without one")
    try:
        return json.loads(text, object_pairs_hook=_object_without_duplicates)
    except _DuplicateKey as exc:
        raise Invalid(
            f"the key {exc.key!r} appears twice in one object",
            errors=[FieldError(exc.key, "appears more than once in its object")],
        ) from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise UnsupportedMediaType("the body is not valid JSON") from exc
    except ValueError as exc:  # an integer of thousands of digits (int's own limit)
        raise Invalid(
            "a number in the body has too many digits",
            errors=[FieldError("body", "a number has too many digits")],
        ) from exc


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def encode(payload: Any) -> str:
    return json.dumps(payload, default=_json_default, ensure_ascii=False, separators=(",", ":"))


def _response(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    media = "application/problem+json" if status >= 400 else "application/json"
    return Response(text, status_code=status, media_type=media, headers=headers)


def _limits(settings: Settings) -> tuple[RateLimits, RateLimits, ConcurrencyLimits]:
    """Each partner's rate, the unknown keys' lookups per address, each partner's
    slots: per process, or shared by every process on the same Redis."""
    rate, lookups = settings.rate_limit_per_second, settings.unknown_key_lookups_per_second
    concurrency, wait = settings.partner_concurrency, settings.partner_queue_seconds
    if not settings.redis_url:
        return RateLimiter(rate), RateLimiter(lookups), ConcurrencyLimiter(concurrency, wait)
    shared = SharedRedis(settings.redis_url, settings.redis_key_prefix)
    return (
        SharedRateLimiter(shared, "partner", rate),
        SharedRateLimiter(shared, "lookups", lookups),
        SharedConcurrencyLimiter(shared, concurrency, wait, settings.partner_slot_lease_seconds),
    )


class Pipeline:
    def __init__(self, ctx: HubContext):
        self.ctx, self.settings, self.vault = ctx, ctx.settings, ctx.vault
        self.keys = KeyCache(ctx.settings.auth_cache_seconds)
        self.limiter, self.lookups, self.slots = _limits(ctx.settings)

    async def handle(
        self,
        request: Request,
        handler: Handler,
        *,
        kinds: frozenset[str],
        body_model: type[BaseModel] | None,
        before: Before | None = None,
    ) -> Response:
        try:
            caller = await self._authenticate(request)
            wait = await self.limiter.check(caller.partner_id)
            if wait:
                raise RateLimited(wait)
            if caller.kind not in kinds:
                raise Forbidden(
                    f"{request.method} {request.url.path} is not open to {caller.kind}s"
                )
            if any("\x00" in value for value in request.path_params.values()):
                raise NotFound("no such object")  # no id holds a NUL
            if any("\x00" in value for value in request.query_params.values()):
                raise Invalid("query parameters cannot hold NUL characters")
            write = request.method == "POST"
            key = self._idempotency_key(request) if write else None
            parsed = await self._read_json(request) if body_model is not None else None
            body = self._validate(body_model, parsed)
            call = Call(
                caller,
                dict(request.path_params),
                request.query_params,
                body,
                clock.now(),
                self.settings,
                self.vault,
                idempotency_key=key,
            )
            async with self.slots.slot(caller.partner_id):
                if before is not None:  # outside any transaction
                    call = replace(call, prepared=await run_in_threadpool(before, call, self.ctx))
                if key is None:
                    status, text = await run_in_threadpool(self._run_read, call, handler)
                    return _response(status, text)
                status, text, replayed = await run_in_threadpool(
                    self._run_write, call, handler, key, request.method, request.url.path, parsed
                )
            return _response(status, text, {"Idempotent-Replayed": "true"} if replayed else None)
        except Busy:
            return problem_response(RateLimited(1, "too many requests of this partner at once"))
        except HubError as error:
            return problem_response(error)

    async def _authenticate(self, request: Request) -> Caller:
        header = request.headers.get("authorization", "")
        scheme, _, api_key = header.partition(" ")
        api_key = api_key.strip()
        if scheme.lower() != "bearer" or not api_key:
            raise Unauthenticated("send Authorization: Bearer <api_key>")
        known, caller = self.keys.get(api_key)
        if not known:
            # A key never seen costs a database lookup: at most a few a second
            # from one address, so that guessing keys cannot load the database.
            if not self.keys.was_known(api_key):
                address = request.client.host if request.client else ""
                wait = await self.lookups.check(address)
                if wait:
                    raise RateLimited(wait)
            caller = await run_in_threadpool(self._lookup_key, api_key)
            self.keys.put(api_key, caller)
        if caller is None:
            raise Unauthenticated("the API key is unknown, expired or disabled")
        request.state.partner_kind, request.state.partner = caller.kind, caller.code  # metrics
        return caller

    def _lookup_key(self, api_key: str) -> Caller | None:
        return partners.identify(self.ctx, api_key)

    @staticmethod
    def _idempotency_key(request: Request) -> str:
        key = request.headers.get("idempotency-key")
        if key is None or key == "":
            raise IdempotencyKeyMissing("send an Idempotency-Key header with every POST")
        if not _KEY.match(key):
            raise IdempotencyKeyInvalid("Idempotency-Key must be 1-255 printable ASCII characters")
        return key

    @staticmethod
    async def _read_json(request: Request) -> Any:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY:
            raise PayloadTooLarge(f"the body is {length} bytes; the limit is {MAX_BODY}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise PayloadTooLarge(f"the body is over {MAX_BODY} bytes")
            chunks.append(chunk)
        raw = b"".join(chunks)
        if not raw.strip():
            return {}
        media, _, options = request.headers.get("content-type", "").partition(";")
        media = media.strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            raise UnsupportedMediaType("send the body as Content-Type: application/json")
        charset = _CHARSET.search(options)
        if charset and charset.group(1).lower() not in ("utf-8", "utf8"):
            raise UnsupportedMediaType("send the body in UTF-8 (charset=utf-8)")
        return parse_json(raw)

    @staticmethod
    def _validate(model: type[BaseModel] | None, parsed: Any) -> Any:
        if model is None:
            return None
        try:
            return model.model_validate(parsed)
        except ValidationError as exc:
            raise validation_error(exc) from exc

    def _run_read(self, call: Call, handler: Handler) -> tuple[int, str]:
        def work(session: Transaction) -> tuple[int, str]:
            status, payload = handler(call, session)
            return status, encode(payload)

        return run_read(self.ctx.engine, work)

    def _run_write(
        self, call: Call, handler: Handler, key: str, method: str, path: str, body: Any
    ) -> tuple[int, str, bool]:
        """Run the use case once per key; a retry gets the first outcome back."""
        body = idempotency.fingerprint(body, self.vault.lookup_hash)
        attempt = idempotency.Attempt(call.caller.partner_id, key, method, path, body, call.now)

        def work(session: Transaction) -> tuple[int, str]:
            status, payload = handler(call, session)
            return status, encode(payload)

        try:
            (status, text), stored = idempotency.run(
                self.ctx.engine, attempt, work, _outcome, tries=_RETRIES
            )
        except idempotency.InProgress as exc:
            raise RequestInProgress("the first request with this key is still running") from exc
        except idempotency.DatabaseFailed as exc:
            log.exception("database error on %s %s", method, path)
            raise InternalError("the hub could not complete the request; retry it") from exc
        except idempotency.StoredMeanwhile as exc:
            raise InternalError("the request could not be completed; retry it") from exc
        if stored is None:
            return status, text, False
        differing = idempotency.differences(stored, method, path, body)
        if differing:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was first used with other values of: " + ", ".join(differing)
            )
        return status, text, True


def _outcome(error: HubError) -> tuple[int, str]:
    return status_of(error), problem_text(error)
