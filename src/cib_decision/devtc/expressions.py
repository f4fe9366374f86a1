"""Scope expressions as the Taskcluster services evaluate them (pure).

An API method declares a *template* (references.json `scopes`): a string with `<param>`
placeholders, `{"AllOf": [...]}`, `{"AnyOf": [...]}`, `{"for": p, "in": list, "each": str}` or
`{"if": flag, "then": ..., "else": ...}`. Rendering it with the call's parameters gives a scope
*expression* (strings, AllOf, AnyOf); a set of granted scopes satisfies it where a granted scope
equals a required one or ends in `*` and is a prefix of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_PARAM = re.compile(r"<([a-zA-Z][a-zA-Z0-9_]*)>")

Expression = str | dict[str, list[Any]]


def template_params(template: Any) -> set[str]:
    """The parameter names a template needs (a `for` variable is bound, not needed)."""
    if template is None:
        return set()
    if isinstance(template, str):
        return set(_PARAM.findall(template))
    if "AllOf" in template or "AnyOf" in template:
        return set().union(*(template_params(t) for t in next(iter(template.values()))))
    if "for" in template:
        return {template["in"]} | (template_params(template["each"]) - {template["for"]})
    if "if" in template:
        return ({template["if"]} | template_params(template["then"])
                | template_params(template.get("else")))
    raise ValueError(f"not a scope expression template: {template!r}")


def render(template: Any, params: Mapping[str, Any]) -> Expression | list[str] | None:
    """The scope expression of `template` with `params` filled in (None: no scopes needed)."""
    if isinstance(template, str):
        def value(match: re.Match[str]) -> str:
            found = params.get(match.group(1))
            if not isinstance(found, str | int) or isinstance(found, bool):
                raise ValueError(f"scope template needs a string parameter {match.group(1)!r}")
            return str(found)
        return _PARAM.sub(value, template)
    for op in ("AllOf", "AnyOf"):
        if op in template:
            items: list[Any] = []
            for sub in template[op]:
                result = render(sub, params)
                if isinstance(result, list):
                    items += result
                elif result is not None:
                    items.append(result)
            return {op: items}
    if "for" in template:
        values = params.get(template["in"])
        if not isinstance(values, list):
            raise ValueError(f"scope template needs a list parameter {template['in']!r}")
        return [render(template["each"], {**params, template["for"]: v}) for v in values]
    if "if" in template:
        flag = params.get(template["if"])
        if not isinstance(flag, bool):
            raise ValueError(f"scope template needs a boolean parameter {template['if']!r}")
        if flag:
            return render(template["then"], params)
        return render(template["else"], params) if "else" in template else None
    raise ValueError(f"not a scope expression template: {template!r}")


def grants(granted: Iterable[str], scope: str) -> bool:
    """True when one granted scope is `scope` or a `prefix*` of it."""
    return any(g == scope or (g.endswith("*") and scope.startswith(g[:-1])) for g in granted)


def satisfied(granted: Iterable[str], expression: Expression) -> bool:
    """True when the granted scopes satisfy the expression."""
    return unsatisfied(list(granted), expression) is None


def unsatisfied(granted: list[str], expression: Expression) -> Expression | None:
    """What is missing from `granted` to satisfy `expression` (None when nothing is)."""
    if isinstance(expression, str):
        return None if grants(granted, expression) else expression
    if "AllOf" in expression:
        missing = [m for m in (unsatisfied(granted, e) for e in expression["AllOf"])
                   if m is not None]
        if not missing:
            return None
        return missing[0] if len(missing) == 1 else {"AllOf": missing}
    options = expression["AnyOf"]
    if not options:
        return expression
    missing = [unsatisfied(granted, e) for e in options]
    if any(m is None for m in missing):
        return None
    return missing[0] if len(missing) == 1 else {"AnyOf": missing}


def scope_list(expression: Expression | None) -> list[str]:
    """Every scope named in an expression, in order (for messages)."""
    if expression is None:
        return []
    if isinstance(expression, str):
        return [expression]
    return [s for e in next(iter(expression.values())) for s in scope_list(e)]
