"""Human-readable renderings of reports (rich tables; plain text when not on a terminal).

The mermaid graph is checkrun.plan_mermaid: the decision's check run draws it too."""

from __future__ import annotations

import sys
from typing import TextIO

import orjson

from ..changes import ChangeReport
from ..plan import Plan


def _yes_no(flag: bool, yes: str) -> str:
    return yes if flag else "-"


def changes_table(report: ChangeReport, out: TextIO) -> None:
    """Print what must be rebuilt, and which pools change, as two tables."""
    # rich is imported by the tables only: `--format json` (a decision's plan, the bench's)
    # does without its import
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, width=160 if not out.isatty() else None)
    console.print(f"changes from {report.base[:12]} to {report.head[:12]}")
    images = Table("key", "image", "rebuild", "digest", "because", box=None, pad_edge=False)
    pools = Table("key", "pool", "update", "because", box=None, pad_edge=False)
    for key in report.keys:
        label = f"{key.key} (removed)" if key.removed else key.key
        images.add_row(label, "disk", _yes_no(key.disk_image.rebuild, "rebuild"),
                       key.disk_image.digest[:12], ", ".join(key.disk_image.because))
        for target in key.targets:
            change = target.machine_image
            if target.skipped:  # no task whatever changed
                images.add_row("", target.target, "skipped", change.digest[:12],
                               target.skipped)
                continue
            images.add_row("", target.target, _yes_no(change.rebuild, "rebuild"),
                           change.digest[:12], ", ".join(change.because))
        for pool in key.pools:
            pools.add_row(label, pool.pool, _yes_no(pool.update, "update"),
                          ", ".join(pool.because))
    console.print(images)
    console.print(pools)


def plan_table(plan: Plan, out: TextIO) -> None:
    """Label, kind, Treeherder symbol, dependencies and reason of every task that would run."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, width=200 if not out.isatty() else None)
    table = Table(box=None, pad_edge=False)
    for name in ("label", "kind", "symbol", "dependencies", "reason"):
        # long text wraps onto more lines, never an ellipsis: two labels cut short could
        # read the same
        table.add_column(name, overflow="fold")
    for task in plan.tasks.values():
        table.add_row(task.label, task.kind, task.symbol, ", ".join(task.dependencies) or "-",
                      task.reason)
    console.print(table)
    skipped = f"; {len(plan.built)} already built at the base" if plan.built else ""
    console.print(f"{len(plan.tasks)} tasks{skipped}")
    by_reason: dict[str, list[str]] = {}
    for label, reason in plan.skipped.items():
        by_reason.setdefault(reason, []).append(label)
    for reason, labels in by_reason.items():  # e.g. a cloud cib does not build on yet
        console.print(f"{reason}: {', '.join(labels)} skipped", highlight=False, markup=False,
                      soft_wrap=True)


def plan_json(plan: Plan) -> str:
    """`cib plan --format json`: keys sorted, indented by two."""
    return plan_json_bytes(plan).decode()


def plan_json_bytes(plan: Plan) -> bytes:
    """`plan_json` as UTF-8, what the command writes: orjson, because the standard library's
    indenting encoder is pure Python and was a third of a thousand-key plan; bytes, because
    decoding 60 MB and encoding it again for stdout cost a tenth of that again."""
    return orjson.dumps(plan.to_json(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


def write_bytes(data: bytes, out: TextIO | None = None) -> None:
    """Write UTF-8 `data` and a newline to `out` (stdout) as `print` would, through its
    binary buffer when it has one."""
    out = out or sys.stdout
    buffer = getattr(out, "buffer", None)
    if buffer is None:
        print(data.decode(), file=out)
        return
    out.flush()
    buffer.write(data)
    buffer.write(b"\n")
    buffer.flush()


def plan_dot(plan: Plan) -> str:
    """Graphviz of the planned graph."""
    lines = ["digraph plan {", "  rankdir=LR;", "  node [shape=box];"]
    for task in plan.tasks.values():
        lines.append(f'  "{task.label}" [label="{task.label}\\n{task.symbol}"];')
        lines += [f'  "{task.label}" -> "{dep}";' for dep in task.dependencies
                  if dep in plan.tasks]
    return "\n".join([*lines, "}"])
