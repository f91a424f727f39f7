"""JSON log lines carrying the Forge trace id (``x-b3-traceid``) and the installation.

``configure(level)`` installs one JSON handler on the root logger. The edge sets ``trace_id`` and
``installation`` (context variables) for each request; every line logged while handling it carries
them. Tokens and secrets are never passed to a logger.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar

trace_id: ContextVar[str | None] = ContextVar("trace_id", default=None)
installation: ContextVar[str | None] = ContextVar("installation", default=None)

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if (tid := trace_id.get()) is not None:
            line["traceId"] = tid
        if (inst := installation.get()) is not None:
            line["installation"] = inst
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(level: str = "INFO") -> None:
    root = logging.getLogger()
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
