"""Log lines: text, or one JSON object per line with LOG_FORMAT=json; either way with the
request id of the work (ports/log_context.py) and with secrets and card numbers masked, whatever
a message or a traceback holds."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

from ..ports.log_context import request_id

_SECRET = re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{4,}|\bwhsec_[A-Za-z0-9_]{4,}")
_DIGITS = re.compile(r"\b(?:\d[ -]?){13,18}\d\b")


def _luhn(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def mask(text: str) -> str:
    """`text` with API keys, webhook secrets and anything that checks out as a card number
    replaced."""
    text = _SECRET.sub("[secret]", text)

    def card(match: re.Match[str]) -> str:
        digits = re.sub(r"[ -]", "", match.group(0))
        # 14 digits and up: a 13-digit number is far likelier a time in milliseconds.
        return "[card]" if 14 <= len(digits) <= 19 and _luhn(digits) else match.group(0)

    return _DIGITS.sub(card, text)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get() or "-"
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(),
                "level": record.levelname, "logger": record.name,
                "message": mask(record.getMessage()),
                "request_id": request_id.get()}  # null: no request or job
        if record.exc_info:
            line["exception"] = mask(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False)


def configure(level: str, log_format: str) -> None:
    """The root logger's handler, in `log_format` (text or json); like `basicConfig`, it
    leaves a root logger that already has handlers (an embedding program's, a test's) alone."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler])
