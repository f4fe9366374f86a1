"""Closest-word suggestions and edit distance, for "did you mean" messages."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The candidate most like `word` (case-insensitive), or None when nothing is close."""
    options = list(candidates)
    lowered = {c.lower(): c for c in options}
    prefixed = [c for c in lowered if len(word) >= 3 and c.startswith(word.lower())]
    if len(prefixed) == 1:  # an abbreviation: `prod` for `production`
        return lowered[prefixed[0]]
    match = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=cutoff)
    return lowered[match[0]] if match else None


def edit_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance: insertions, deletions, substitutions, transpositions."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                value = min(value, previous2[j - 2] + 1)
            current.append(value)
        previous2, previous = previous, current
    return previous[-1]


def within_distance(a: str, b: str, limit: int) -> bool:
    """`edit_distance(a, b) <= limit`, in time linear in the words' length: only the cells
    within `limit` of the diagonal count, and the work stops once a row exceeds it."""
    # necessary conditions, cheap: an edit changes the length by at most one and the set of
    # characters used by at most two
    if abs(len(a) - len(b)) > limit or len(set(a) ^ set(b)) > 2 * limit:
        return False
    far = limit + 1
    previous2: list[int] = []
    previous = [j if j <= limit else far for j in range(len(b) + 1)]
    for i, ca in enumerate(a, 1):
        current = [i if i <= limit else far] + [far] * len(b)
        for j in range(max(1, i - limit), min(len(b), i + limit) + 1):
            cb = b[j - 1]
            value = min(previous[j] + 1, current[j - 1] + 1,
                        previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                value = min(value, previous2[j - 2] + 1)
            current[j] = min(value, far)
        if min(current) > limit:
            return False
        previous2, previous = previous, current
    return previous[-1] <= limit
