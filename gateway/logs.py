"""Structured logs: one JSON object per line on stderr, for every process of the gateway (main and workers).

Every line has `ts` (UTC, ISO 8601, ms), `level`, `logger` and `event` (a short fixed phrase or the message); the
events below add their own fields. uvicorn's own loggers go through the same formatter (`dict_config` is the
`log_config` uvicorn applies in the main process and again in each worker).

    request     one per answered call (refusals too): interaction_id, trace_id, client_id, method, route (the
                template, never a concrete path), status, latency_ms, decision, reason
    startup     the main process is serving: the listener, admin port, workers, build version
    reload      SIGHUP: policies and TLS files re-read (or refused, with why), workers replaced
    ...         warnings and errors (Redis unavailable, an audit record not stored, a worker that cannot start)

What never appears: tokens, secrets, keys, certificates, customer ids (not even pseudonyms), consent contents, query
strings or bodies. The request line is built from named fields only, never from a request's headers or path; the
rest are the code's own messages (tests/unit/test_logs.py holds both to that).
"""
from __future__ import annotations

import logging
import time
from typing import Any

import orjson

LEVELS = ("debug", "info", "warning", "error")
FIELDS = "fields"  # a LogRecord attribute (`extra={FIELDS: {...}}`): the event's own fields, added to the line
REQUEST = logging.getLogger("obgw.request")


_second: list = [-1, ""]  # the last whole second formatted, and its text: one strftime a second, not a line


def _timestamp(created: float) -> str:
    seconds = int(created)
    if seconds != _second[0]:
        _second[:] = [seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))]
    return f"{_second[1]}.{int((created - seconds) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """A LogRecord as one JSON object (orjson: ~1 µs a line)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"ts": _timestamp(record.created), "level": record.levelname.lower(),
                                "logger": record.name, "event": record.getMessage()}
        fields = getattr(record, FIELDS, None)
        if fields:
            line.update(fields)
        if record.exc_info:
            line["error"] = f"{record.exc_info[0].__name__ if record.exc_info[0] else 'Exception'}"
            line["traceback"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def dict_config(level: str = "info") -> dict[str, Any]:
    """logging.config.dictConfig for every process: one stderr handler with JsonFormatter on the root logger."""
    upper = level.upper()
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"json": {"()": "gateway.logs.JsonFormatter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": upper},
        # uvicorn's own info lines (a worker started, ...) say what obgw's startup and reload events say already.
        "loggers": {name: {"level": upper, "handlers": [], "propagate": True} for name in ("obgw", "gateway")}
                   | {name: {"level": "WARNING" if upper in ("DEBUG", "INFO") else upper, "handlers": [],
                             "propagate": True} for name in ("uvicorn", "uvicorn.error", "uvicorn.access")}
                   # libraries that log URLs (with their queries) at info: warnings only
                   | {name: {"level": "WARNING", "handlers": [], "propagate": True}
                      for name in ("httpx", "httpcore", "aiohttp", "urllib3", "authlib")},
    }


def configure(level: str = "info") -> None:
    import logging.config
    logging.config.dictConfig(dict_config(level))


def event(logger: logging.Logger, level: int, name: str, **fields: Any) -> None:
    """One event line with its fields: `event(log, logging.INFO, "reload", policies="ok")`."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={FIELDS: fields})


def request_ended(interaction_id: str, trace_id: str | None, client_id: str | None, method: str, route: str | None,
                  status: int, latency_ms: float, decision: str, reason: str | None) -> None:
    """The `request` line of one answered call (Audit middleware, after its record is stored). Named fields only.

    On the hot path: the record is made here and handed to the handlers, without `Logger.info`'s search of the
    stack for the caller (about half the cost of a line)."""
    if not REQUEST.isEnabledFor(logging.INFO):
        return
    record = logging.LogRecord(REQUEST.name, logging.INFO, __file__, 0, "request", None, None)
    record.fields = {
        "interaction_id": interaction_id, "trace_id": trace_id, "client_id": client_id, "method": method,
        "route": route, "status": status, "latency_ms": latency_ms, "decision": decision, "reason": reason}
    REQUEST.handle(record)
