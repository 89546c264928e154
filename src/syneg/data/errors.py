from __future__ import annotations


class DataError(ValueError):
    """Malformed or missing input; the message names the file (and line or id) at fault."""
