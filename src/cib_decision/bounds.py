"""Bounds on what a push controls: a commit message, and the text of it that errors echo.

Anyone who can push, or open a pull request, writes the commit message a decision reads. Each
bound below is enforced with a clear error (exit 2, nothing submitted), and the work done on a
message stays linear in its size whatever it holds. The README's security section lists them
with the config file bounds of `yamlsrc.py`.
"""

from __future__ import annotations

from collections.abc import Callable

# The whole commit message (git and GitHub allow far more; a directive stands in its first lines).
MAX_MESSAGE_CHARS = 1_000_000
# A directive line: a longer line that starts like a directive is refused, not read as prose.
MAX_DIRECTIVE_LINE_CHARS = 10_000
# Directive lines (flags and filters, misspelt ones included) in one message.
MAX_DIRECTIVE_LINES = 100
# Names in one filter line (`*` stands for every name of a type).
MAX_FILTER_NAMES = 1_000
# A name in a filter: longer than any key, pool, region or environment can be.
MAX_NAME_CHARS = 200
# Problems listed in one error; the rest are counted ("... and N more").
MAX_PROBLEMS = 20
# Characters of a line or value an error message quotes.
MAX_EXCERPT_CHARS = 80


def excerpt(text: str, limit: int = MAX_EXCERPT_CHARS) -> str:
    """`text` as an error message may quote it: control, format and line-separator
    characters escaped (a message shows what is there, and cannot be made to show more
    lines), backticks replaced (the text is quoted in markdown code), and at most `limit`
    characters, the rest counted."""
    shown = text[:limit]
    escaped = "".join(_escape(c) for c in shown).replace("`", "'")
    if len(text) > limit:
        escaped += f"... ({len(text) - limit} more characters)"
    return escaped


def _escape(char: str) -> str:
    # not printable: controls, format characters (zero-width, bidirectional overrides),
    # separators other than the space
    if char == " " or char.isprintable():
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 \
        else f"\\U{code:08x}"


# Pull request numbers: GitHub's are positive and far below this (naming.pr_pool_id keeps
# them in pool ids, and JSON consumers keep them in 64-bit integers).
MAX_PULL_REQUEST = 10**9


def pull_request_number(text: str | None, pull_request: bool) -> int:
    """The pull request number of a decision from its event (`CIB_PULL_REQUEST_NUMBER`): for a
    pull-request event a number from 1 to `MAX_PULL_REQUEST`, else none (0). Anything else is
    a CibError: a pull request decision without its number would target the real pools."""
    from .errors import CibError

    value = (text or "").strip()
    if not pull_request:
        if value not in ("", "0"):
            raise CibError(f"pull request number {excerpt(value, 20)!r} given to a decision "
                           "that is not for a pull request")
        return 0
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_PULL_REQUEST:
        raise CibError(f"a pull request decision needs its pull request number (1 to "
                       f"{MAX_PULL_REQUEST}); got {excerpt(value, 20)!r}: nothing submitted")
    return int(value)


def int_argument(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high` (argparse's own error, exit 2,
    for anything else)."""
    import argparse

    def parse(text: str) -> int:
        try:
            value = int(text) if len(text) <= 20 else None
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{excerpt(text, 20)!r} is not a whole number from {low} to {high}")
        return value

    parse.__name__ = "number"
    return parse


# `--pull-request N` of every command
PULL_REQUEST = int_argument(1, MAX_PULL_REQUEST)
