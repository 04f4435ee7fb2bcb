"""The API's JSON parser: JSON, but only text every database can keep."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def _has_lone_surrogate(value: Any) -> bool:
    # Walked with a list rather than by recursion: the json module reads nesting deeper than Python's stack.
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


class UnicodeJSONParser(JSONParser):
    """JSON may escape lone surrogates ("\\ud800"); they are not text, and no store can keep them."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the JSON is nested too deeply.") from None
        if _has_lone_surrogate(data):
            raise ParseError("The JSON holds text that is not valid Unicode (a lone surrogate).")
        return data
