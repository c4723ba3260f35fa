"""Names that become parts of paths (a run's name, a study's name): plain, short, and never a path."""

from __future__ import annotations

import re

from .errors import ConfigError

MAX_LENGTH = 100
_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_name(value: str, what: str = "name") -> str:
    """``value`` if it is a plain name: letters, digits, '.', '-', '_', not starting with '.' or '-'."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{what} must be a non-empty name")
    if len(value) > MAX_LENGTH:
        raise ConfigError(f"{what} is {len(value)} characters long; allowed: at most {MAX_LENGTH}")
    if not _PLAIN.fullmatch(value) or ".." in value:  # fullmatch: "$" alone lets a final newline through
        raise ConfigError(f"{what} {value[:40]!r} is not a plain name; allowed: letters, digits, '.', '-' and '_' "
                          "(no path separators, '..', spaces or control characters), starting with a letter or digit")
    return value
