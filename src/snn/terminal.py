"""Text that came from a file (a class name, a dataset's name, a path), made safe to show in a terminal.

A model file, a CSV or a run folder is anyone's: what it names is shown as the characters it
holds, never as rich markup (``[link=...]``, ``[/x]``) and never as control characters (ESC
sequences, NUL, a line break that splits a one-line answer). Those are escaped as Python writes
them in a string literal (``\\x1b``, ``\\n``), so what a person sees is what the file holds.
"""

from __future__ import annotations

from rich.markup import escape


def plain(value) -> str:
    """``value`` as text with every unprintable character (control, format, separator) escaped."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def literal(value) -> str:
    """``plain(value)`` that rich prints as it is: for an f-string that also holds rich markup of snn's own."""
    return escape(plain(value))
