"""Log lines operators can ship and search: one JSON object per line (or plain text
for a person at a terminal), each with the request it belongs to, none with
personal data.

What keeps personal data out, besides the code never logging it:
- only named fields are written: the time, level, logger, message, request id,
  and the access log's method, route template, status, duration and partner —
  never a record's other attributes, and never a request body;
- an exception is written as its class names and the frames it passed through
  (file, line, function), without its message: a driver's or a validator's
  message can quote the values it was given;
- a last net masks what looks like an identity number (18 characters with a
  valid GB 11643 check) or a mainland mobile number (11 digits from 13 to 19)
  in the message, in case a future line slips one in. Names have no shape to
  catch: they are kept out by the first two rules.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
import time
import traceback
from contextvars import ContextVar
from types import TracebackType
from typing import Any

request_id: ContextVar[str | None] = ContextVar("credithub_request_id", default=None)
"""The request being served (set by the API's RequestIdMiddleware), for every line it logs."""

ACCESS_FIELDS = ("method", "route", "status", "duration_ms", "partner_kind", "partner")
_ID_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")
_MOBILE = re.compile(r"(?<![0-9])(?:\+?86[ -]?)?1[3-9][0-9]{9}(?![0-9])")


def _is_id_number(text: str) -> bool:
    total = sum(int(d) * w for d, w in zip(text[:17], _ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == text[17].upper()


def scrub(text: str) -> str:
    """Mask identity numbers and mobile numbers that reached a log message."""
    text = _ID_NUMBER.sub(lambda m: "[id number]" if _is_id_number(m[0]) else m[0], text)
    return _MOBILE.sub("[phone]", text)


def describe_exception(exc_info: Any) -> dict[str, Any]:
    """An exception as class names (its causes too) and frames, never its message."""
    _type, exc, tb = exc_info
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(f"{type(exc).__module__}.{type(exc).__qualname__}")
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    first = chain[0] if chain else str(_type)
    return {"error": first, "caused_by": chain[1:], "frames": _frames(tb)}


def _frames(tb: TracebackType | None) -> list[str]:
    return [f"{f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(tb)][-20:]


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def _message(record: logging.LogRecord) -> str:
    # An access line is made of the route's template, a method and numbers only.
    message = record.getMessage()
    return message if getattr(record, "route", None) is not None else scrub(message)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, request_id, and the
    access log's fields when the record has them."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": _message(record),
            "request_id": getattr(record, "request_id", None) or request_id.get(),
        }
        for field in ACCESS_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                line[field] = value
        if record.exc_info and record.exc_info[0] is not None:
            line.update(describe_exception(record.exc_info))
        return _encode(line)


class TextFormatter(logging.Formatter):
    """The same lines for a person: time, level, logger, request id, message, and
    an exception's classes and frames (never its message)."""

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None) or request_id.get() or "-"
        text = (
            f"{_timestamp(record.created)} {record.levelname} {record.name} [{rid}] "
            f"{_message(record)}"
        )
        if record.exc_info and record.exc_info[0] is not None:
            described = describe_exception(record.exc_info)
            causes = "".join(f" (caused by {c})" for c in described["caused_by"])
            frames = "".join(f"\n    {frame}" for frame in described["frames"])
            text += f"\n  {described['error']}{causes}{frames}"
        return text


_second: tuple[int, str] = (-1, "")


def _timestamp(created: float) -> str:
    """RFC 3339 in UTC with milliseconds; the second's text is worked out once."""
    global _second
    seconds = int(created)
    if _second[0] != seconds:
        _second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{_second[1]}.{int((created - seconds) * 1000):03d}Z"


def logging_config(form: str = "json", level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` for a process of the hub: everything, uvicorn's
    own loggers included, through one handler on stderr in `form` ("json" or "text").
    httpx's and urllib3's request lines (every URL called) are left out."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"credithub": {"()": f"{__name__}.formatter", "form": form}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "credithub",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
            "httpx": {"level": "WARNING"},
            "urllib3": {"level": "WARNING"},  # the partner calls' request lines, at DEBUG
            "alembic": {"level": "WARNING"},  # a line per readiness check otherwise
            "httpcore": {"level": "WARNING"},
        },
    }


def configure(form: str = "json", level: str = "INFO") -> None:
    logging.config.dictConfig(logging_config(form, level))


def formatter(form: str) -> logging.Formatter:
    """The process's formatter (`logging_config`'s factory): a process that writes
    its lines through it never writes a record's caller, thread or process, so its
    records are made without them (in each of uvicorn's workers too)."""
    lighten_records()
    return JsonFormatter() if form == "json" else TextFormatter()


def lighten_records() -> None:
    """Records without what no line of ours writes: the caller's file and line (a
    walk up the stack for every record), thread and process names (the logging
    HOWTO's "Optimization"). An access line costs half as much."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
