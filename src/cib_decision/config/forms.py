"""cloud-image-builder's earlier config forms, rewritten into the one current form.

The predecessor's format changed under its users: a pool was once a single mapping named by
`id`, worker-manager timeouts once sat in `lifecycle`, the network location was once a bare
word, unattend commands were once grouped under one `target`. Each earlier form is accepted by
the schema (schemas.py marks it "predecessor form", so a problem in it is still reported at its
own line) and rewritten here, after validation, into the current form that digests, the graph
and the builders read: a file means what the predecessor's scripts of its time made of it.
docs/predecessor-forms.md lists every form with its dates and the script that read it.

Pure functions over validated data; a document already in the current form is returned as it
is (the same object), so its digests are what they always were.
"""

from __future__ import annotations

import re
from typing import Any

# Where an earlier form kept a worker-manager lifecycle timeout: its name there -> ours.
_TIMEOUTS = {"registrationTimeout": "registration", "reregistrationTimeout": "reregistration"}


def key_in_current_form(data: dict[str, Any]) -> dict[str, Any]:
    """An image key's document with every earlier form rewritten (see the module docstring)."""
    image, manager = data.get("image") or {}, data.get("manager") or {}
    network, pools = image.get("network"), manager.get("pool")
    listed = [pools] if isinstance(pools, dict) else pools  # January 2020: the one pool
    current = [_pool_in_current_form(p) for p in listed] if listed is not None else None
    pools_changed = current is not None and (
        listed is not pools or any(a is not b for a, b in zip(current, listed, strict=True)))
    targets = data.get("target") or []
    current_targets = [_target_in_current_form(t) for t in targets]
    targets_changed = any(a is not b for a, b in zip(current_targets, targets, strict=True))
    if not isinstance(network, str) and not pools_changed and not targets_changed:
        return data
    result = dict(data)
    if targets_changed:
        result["target"] = current_targets
    if isinstance(network, str):  # June to August 2020: the network location alone
        result["image"] = {**image, "network": {"location": network}}
    if pools_changed:
        result["manager"] = {**manager, "pool": current}
    return result


def _pool_in_current_form(pool: dict[str, Any]) -> dict[str, Any]:
    lifecycle = pool.get("lifecycle")
    moved = {ours: pool[theirs] for theirs, ours in _TIMEOUTS.items() if theirs in pool}
    if isinstance(lifecycle, dict):  # May 2020: worker-manager's lifecycle object
        moved.update({ours: lifecycle[theirs] for theirs, ours in _TIMEOUTS.items()
                      if theirs in lifecycle})
    named = "id" in pool  # the schema allows `id` or `domain` and `variant`, not both
    if not (moved or named or isinstance(lifecycle, dict)):
        return pool
    result = {k: v for k, v in pool.items() if k not in _TIMEOUTS and k != "id"}
    if isinstance(lifecycle, dict):
        del result["lifecycle"]  # the predecessor then read only the word `spot` from it
    if moved:
        result["timeout"] = {**moved, **(pool.get("timeout") or {})}
    if named:  # January 2020: `id: <domain>/<variant>`
        result["domain"], result["variant"] = pool["id"].split("/", 1)
    return result


def like_as_match(pattern: str) -> str:
    """PowerShell's `-like` wildcard (the whole output; `*`, `?`, `[...]`; case-insensitive,
    as `-match` is too) as the regular expression `test.std.out.match` takes."""
    parts, index = [], 0
    while index < len(pattern):
        char = pattern[index]
        if char == "*":
            parts.append(r"[\s\S]*")
        elif char == "?":
            parts.append(r"[\s\S]")
        elif char == "[" and "]" in pattern[index + 1:]:
            end = pattern.index("]", index + 1)
            parts.append("[" + pattern[index + 1:end].replace("\\", "\\\\") + "]")
            index = end
        else:
            parts.append(re.escape(char))
        index += 1
    return "^" + "".join(parts) + r"\s*$"  # the output ends with a line break


def _target_in_current_form(target: dict[str, Any]) -> dict[str, Any]:
    """April 2020: an execution's `test.std.out.like` (a `-like` wildcard) as `match`."""
    bootstrap = target.get("bootstrap") or {}
    executions = bootstrap.get("executions") or []
    if not any("like" in (((e.get("test") or {}).get("std") or {}).get("out") or {})
               for e in executions):
        return target
    rewritten = []
    for execution in executions:
        out = ((execution.get("test") or {}).get("std") or {}).get("out") or {}
        if "like" in out:
            test = execution["test"]
            execution = {**execution, "test": {**test, "std": {**test["std"], "out": {
                "match": like_as_match(out["like"])}}}}
        rewritten.append(execution)
    return {**target, "bootstrap": {**bootstrap, "executions": rewritten}}


def unattend_commands_in_current_form(data: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """unattend-commands.yaml with grouped entries (December 2019 to May 2020: `unattend:` a
    list of commands under one `target`) made one entry per command, each with its group's
    target unless it names its own."""
    if not any("unattend" in entry for entry in data):
        return data
    result = []
    for entry in data:
        if "unattend" not in entry:
            result.append(entry)
            continue
        for command in entry["unattend"]:
            flat = {k: v for k, v in entry.items() if k not in ("unattend", "target")}
            flat.update(command)
            target = command.get("target", entry.get("target"))
            if target is not None:
                flat["target"] = target
            result.append(flat)
    return result


IN_CURRENT_FORM = {"key": key_in_current_form,
                   "unattend-commands": unattend_commands_in_current_form}
