"""Reading JSON and YAML documents that anyone may have written: configs, search spaces, sidecars.

Only plain data comes out: mappings, lists, strings, finite numbers, booleans and null.
Everything that makes a small file expand or turn into something else is refused
with one line naming the file: YAML aliases (the "billion laughs"), explicit tags
(``!!binary``, ``!!set``, ``!!python/...``), duplicate keys, ``NaN``/``Infinity``,
nesting past a depth, and files past a size. YAML dates stay strings, and ``1e-3``
is a number as in YAML 1.2 (PyYAML's 1.1 rules would make it a string).
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .errors import ConfigError, SnnError

MAX_BYTES = 1 << 20  # 1 MiB: a config or a search space is a few hundred bytes
MAX_DEPTH = 32

_FLOAT_12 = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_PLAIN_TAGS = {"tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "seq", "map")}


class _PlainLoader(yaml.SafeLoader):
    """SafeLoader without aliases, tags beyond plain data, dates, or duplicate keys."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError(f"YAML aliases (*{self.peek_event().anchor}) are not allowed; write the value out")
        return super().compose_node(parent, index)

    def construct_object(self, node, deep=False):
        if node.tag not in _PLAIN_TAGS:
            raise yaml.YAMLError(f"YAML tag {node.tag!r} is not allowed; only plain strings, numbers, booleans, "
                                 "null, lists and mappings")
        return super().construct_object(node, deep)

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(k, deep=True) for k, _ in node.value]
        duplicate = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
        if duplicate is not None:
            raise yaml.YAMLError(f"key {duplicate!r} appears twice in one mapping")
        return super().construct_mapping(node, deep)


# Dates are plain strings here; numbers follow YAML 1.2, so 1e-3 is 0.001.
_PlainLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_PlainLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    duplicate = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
    if duplicate is not None:
        raise ValueError(f"key {duplicate!r} appears twice in one object")
    return dict(pairs)


def _no_constant(name):
    raise ValueError(f"{name} is not a number JSON allows; give a finite value")


def is_yaml(path: str | Path) -> bool:
    return Path(path).suffix.lower() in (".yaml", ".yml")


def parse_document(text: str, source: str, as_yaml: bool, error=ConfigError) -> Any:
    """Plain data from JSON or YAML ``text``; ``error`` (one line, naming ``source``) otherwise."""
    kind = "YAML" if as_yaml else "JSON"
    try:
        data = (yaml.load(text, Loader=_PlainLoader) if as_yaml  # noqa: S506 - a SafeLoader, narrowed further
                else json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant))
    except (yaml.YAMLError, ValueError) as e:
        raise error(f"{source}: not valid {kind}: {' '.join(str(e).split())}") from None
    except RecursionError:
        raise error(f"{source}: nested too deeply; allowed: {MAX_DEPTH} levels") from None
    _check_plain(data, source, error)
    return data


def read_bounded(path: Path, what: str, error=ConfigError, max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of ``path``, or ``error`` if it cannot be read or holds more than ``max_bytes``."""
    if Path(path).exists():
        regular_size(Path(path), error)  # a FIFO would block the read, a device would never end
    try:
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror or e}; help: check the path and its permissions") from None
    if len(raw) > max_bytes:
        raise error(f"{path}: larger than {max_bytes} bytes, more than a {what} takes")
    return raw


def read_document(path: str | Path, what: str = "config", error=ConfigError, max_bytes: int = MAX_BYTES) -> Any:
    """Read and parse a JSON or YAML file (by its suffix), bounded in size."""
    path = Path(path)
    raw = read_bounded(path, what, error, max_bytes)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text (byte {e.start}); save the {what} as UTF-8") from None
    return parse_document(text, str(path), is_yaml(path), error)


def _check_plain(data, source: str, error, depth: int = 0) -> None:
    """Finite numbers only, and at most MAX_DEPTH levels (YAML floats can be .inf or .nan)."""
    if depth > MAX_DEPTH:
        raise error(f"{source}: nested too deeply; allowed: {MAX_DEPTH} levels")
    if isinstance(data, float) and not math.isfinite(data):
        raise error(f"{source}: {data!r} is not allowed; give a finite number")
    children = data.values() if isinstance(data, dict) else data if isinstance(data, list) else ()
    for child in children:
        _check_plain(child, source, error, depth + 1)


def regular_size(path: Path, error: type[SnnError]) -> int:
    """The size of ``path`` if it is a regular file (a FIFO or a device would block or never end)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except OSError as e:
        raise error(f"{path}: cannot be read ({e.strerror or e})") from None
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{path}: not a regular file")
    return info.st_size


def schema_problem(error: ValidationError) -> str:
    """The first problem a schema found, on one line: the field, what is wrong, and the value given."""
    first = error.errors()[0]
    where = ".".join(_cut(p if isinstance(p, str) and p.isprintable() else repr(p), 40) for p in first["loc"])
    where = where or "(top level)"
    text = f"{where}: {first['msg'].removeprefix('Value error, ')}"
    text = text.replace(f" or instance of {first.get('ctx', {}).get('class_name')}", "")  # a schema class: noise
    if first["loc"] and first["type"] not in ("missing", "json_invalid"):
        text += f" (got {short(first['input'])})"
    if error.error_count() > 1:
        text += f", and {error.error_count() - 1} more problem(s)"
    return " ".join(text.split())


def short(value, limit: int = 60) -> str:
    """A value as written, cut short: a megabyte of junk is not worth repeating."""
    return _cut(repr(value), limit)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
