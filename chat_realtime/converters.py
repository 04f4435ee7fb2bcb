"""URL converters."""


class IdConverter:
    """A database id: digits that fit a signed 64-bit column (longer ones are no id: 404)."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(int(value))
