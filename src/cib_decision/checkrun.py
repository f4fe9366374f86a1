"""The plan where reviewers look: the text of the decision's GitHub check run.

Taskcluster's GitHub service appends a task's markdown artifact
`public/github/customCheckRunText.md` to that task's check run, whole, after its own header (task
links, status, artifact list) and before an excerpt of the live log that it bounds to about
60,000 characters (`services/github/src/handlers/status.js`). Like a Terraform plan for images,
the text says what a push costs: the tasks to run by kind, per image key what is built and why,
what earlier builds are reused, what is skipped, and (when small enough) the graph.

`plan_markdown` is pure and keeps the text within a budget for any fleet size. It never cuts a
line or a table row; it leaves out, in this order, the graph, the long lists (labels of reused
and skipped tasks give way to counts per kind, a directive filter shows its first names) and
the per-key rows that do not fit (a last row counts them). The headline and the directives
always stay.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .checkrun_errors import MAX_TEXT
from .directives import FILTER_TYPES, VERBS, Directives
from .plan import Plan, PlannedTask

# the budget of every check run text we write (why: checkrun_errors.MAX_TEXT)
# mermaid refuses to draw a flowchart with more edges than this (its `maxEdges` default)
MERMAID_MAX_EDGES = 500
# a group of reused or skipped tasks lists its labels when it has at most this many
SHORT_LIST = 20
# a directive filter shows at most this many names when the text must be shortened
DIRECTIVE_NAMES = 30

# how the headline and counts name each kind: (one, many)
KIND_NAMES = {
    "disk-image": ("disk image", "disk images"),
    "machine-image": ("machine image", "machine images"),
    "test-image": ("image test", "image tests"),
    "tag": ("tag", "tags"),
    "worker-pool": ("pool", "pools"),
    "verify": ("pool verification", "pool verifications"),
    "purge": ("purge", "purges"),
    "lint": ("lint", "lints"),
    "task-env": ("task environment", "task environments"),
    "pr-teardown": ("pull request teardown", "pull request teardowns"),
}
KEY_KINDS = ("disk-image", "machine-image", "test-image", "tag", "worker-pool", "verify")
# reasons every task of its kind has: left out of a key's "why" when it has a real one
GENERIC_REASONS = ("tag the new images", "deploy the new images", "claim a task on ",
                   "smoke-test the new image")
NO_ROWS = "no image key has tasks to run"


def plan_markdown(plan: Plan, *, max_chars: int = MAX_TEXT) -> str:
    """The plan as check-run markdown of at most `max_chars` characters.

    Raises ValueError when `max_chars` cannot hold even the headline and the directives.
    """
    view = _View.of(plan)
    graph = _graph(plan)
    for options in (_Options(graph=True, lists=True), _Options(graph=False, lists=True)):
        text = view.render(options, graph, len(view.rows))
        if len(text) <= max_chars:
            return text
    # without long lists, the per-key rows that fit; in the end a total of reused and skipped
    for groups in (True, False):
        options = _Options(graph=False, lists=False, groups=groups)
        rows = view.rows_that_fit(options, graph, max_chars)
        if rows is not None:
            return view.render(options, graph, rows)
    raise ValueError(f"{max_chars} characters cannot hold the plan's headline and directives")


def _escape(text: str) -> str:
    """A table cell: no line breaks, `|` escaped (and `\\`, so an escape stays one)."""
    return _oneline(text).replace("\\", "\\\\").replace("|", "\\|")


def _oneline(text: str) -> str:
    return " ".join(str(text).splitlines())


def _code(text: str) -> str:
    text = _oneline(text)
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}" if fence == "`" else f"{fence} {text} {fence}"


def kind_of_label(label: str, known: Iterable[str] = ()) -> str:
    """A task's kind from its label (`<kind>-<name>`, as our kinds name their tasks)."""
    kinds = sorted({*KIND_NAMES, *known}, key=len, reverse=True)
    return next((kind for kind in kinds if label.startswith(f"{kind}-")), "other")


def counts(kinds: Counter[str]) -> str:
    """`4 disk images, 12 machine images, 1 lint`: kinds in graph order, then the others."""
    order = [k for k in KIND_NAMES if kinds.get(k)] + sorted(
        k for k in kinds if k not in KIND_NAMES and kinds[k])
    parts = []
    for kind in order:
        one, many = KIND_NAMES.get(kind, (kind, kind))
        parts.append(f"{kinds[kind]} {one if kinds[kind] == 1 else many}")
    return ", ".join(parts)


def key_of(task: PlannedTask) -> str | None:
    """The image key a task belongs to: its `cib-key` attribute; for a task without attributes,
    the label of a disk image or tag (`disk-image-<key>`), else the Treeherder platform our
    transforms set to the key."""
    key = task.attributes.get("cib-key")
    if key:
        return str(key)
    if task.kind not in KEY_KINDS:
        return None
    if task.kind in ("disk-image", "tag") and task.label.startswith(f"{task.kind}-"):
        return task.label[len(task.kind) + 1:]
    platform = ((task.task.get("extra") or {}).get("treeherder") or {}).get("machine") or {}
    return platform.get("platform") or None


def _target_of(task: PlannedTask, key: str) -> str:
    target = task.attributes.get("cib-target")
    if target:
        return str(target)
    prefix = f"machine-image-{key}-"
    return task.label[len(prefix):] if task.label.startswith(prefix) else task.label


def _pool_of(task: PlannedTask) -> str:
    pool = task.attributes.get("cib-pool")
    if pool:
        return str(pool)
    prefix = f"{task.kind}-"
    return task.label[len(prefix):] if task.label.startswith(prefix) else task.label


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(item for item in items if item))


@dataclass
class _Options:
    graph: bool  # the mermaid graph, when it fits
    # labels of reused and skipped tasks (groups of at most SHORT_LIST), every name of a
    # directive filter (else the first DIRECTIVE_NAMES)
    lists: bool
    groups: bool = True  # one line per reason of reused and skipped tasks (else a total)


@dataclass
class _KeyRow:
    key: str
    disk: bool = False
    targets: list[str] = field(default_factory=list)
    pools: list[str] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)
    image_reasons: list[str] = field(default_factory=list)
    pool_reasons: list[tuple[str, str]] = field(default_factory=list)
    other_reasons: list[str] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)

    def add(self, task: PlannedTask) -> None:
        self.kinds[task.kind] += 1
        parts = [p.strip() for p in task.reason.split(";")]
        if task.kind == "disk-image":
            self.disk = True
            self.image_reasons += parts
        elif task.kind == "machine-image":
            self.targets.append(_target_of(task, self.key))
            self.image_reasons += parts
        elif task.kind == "worker-pool":
            pool = _pool_of(task)
            self.pools.append(pool)
            if task.reason.startswith("deploy: "):
                parts = [p.strip() for p in task.reason[len("deploy: "):].split(";")]
                self.pool_reasons += [(pool, part) for part in parts]
            else:
                self.other_reasons += parts
        elif task.kind == "verify":
            self.verified.append(_pool_of(task))
            self.other_reasons += parts
        else:
            self.other_reasons += parts

    def why(self) -> str:
        """The reasons of the key's tasks, once each: the config paths that changed (a pool's
        own paths name the pool), directives, or what counts as built."""
        images = _unique(self.image_reasons)
        pools = _unique(part if part in images else f"{pool}: {part}"
                        for pool, part in self.pool_reasons)
        others = _unique(self.other_reasons)
        specific = [r for r in others if not r.startswith(GENERIC_REASONS)]
        reasons = _unique([*images, *pools, *specific])
        return "; ".join(reasons or others)

    def row(self, reused_disk: bool) -> str:
        disk = "build" if self.disk else ("reused" if reused_disk else "-")
        targets = f"{len(self.targets)}: {', '.join(sorted(self.targets))}" \
            if self.targets else "-"
        pools = sorted(self.pools) + [f"{p} (verify)" for p in sorted(self.verified)
                                      if p not in self.pools]
        cells = [self.key, disk, targets, ", ".join(pools) or "-", self.why()]
        return "| " + " | ".join(_escape(cell) for cell in cells) + " |"


TABLE_HEAD = ("| key | disk image | machine images (targets) | pools | why |\n"
              "| --- | --- | --- | --- | --- |")


@dataclass
class _View:
    """What the text is made of, computed once; `render` lays it out at a level of detail."""

    headline: str
    directives: Directives
    rows: list[str]
    # per row, the task counts of the rows from there on (for the row counting those left out)
    rest_kinds: list[Counter[str]]
    others: list[str]
    reused: list[tuple[str, Counter[str], list[str]]]
    skipped: list[tuple[str, Counter[str], list[str]]]
    task_count: int

    @classmethod
    def of(cls, plan: Plan) -> _View:
        by_key: dict[str, _KeyRow] = {}
        others: dict[tuple[str, str], int] = {}
        for task in plan.tasks.values():
            key = key_of(task)
            if key is None:
                others[task.kind, task.reason] = others.get((task.kind, task.reason), 0) + 1
            else:
                by_key.setdefault(key, _KeyRow(key)).add(task)
        keys = sorted(by_key)
        rows = [by_key[k].row(f"disk-image-{k}" in plan.built) for k in keys]
        other_lines = [f"- {counts(Counter({kind: n}))}: {_oneline(reason) or '-'}"
                       for (kind, reason), n in sorted(
                           others.items(), key=lambda item: (_kind_rank(item[0][0]), item[0]))]
        known = {t.kind for t in plan.tasks.values()}
        rest_kinds = [Counter[str]()]
        for key in reversed(keys):
            rest_kinds.append(rest_kinds[-1] + by_key[key].kinds)
        return cls(_headline(plan), plan.directives, rows, rest_kinds[::-1],
                   other_lines, _groups(plan.built, known), _groups(plan.skipped, known),
                   len(plan.tasks))

    def render(self, options: _Options, graph: str | None, rows: int) -> str:
        return "\n".join(self._head(options) + self._table(rows) + self._tail(options, graph))

    def rows_that_fit(self, options: _Options, graph: str | None, max_chars: int) -> int | None:
        """The most table rows (followed by a row counting the rest) within `max_chars`; None
        when not even the text without rows fits."""
        if len(self.render(options, graph, len(self.rows))) <= max_chars:
            return len(self.rows)
        fixed = len(self.render(options, graph, 0)) - len(self._more(0))
        # render(n) = fixed + sum(len(row) + 1 for the first n rows) + len(self._more(n)),
        # for n below the number of rows (the last row then counts the others)
        size, best = fixed, None
        for taken in range(len(self.rows)):
            if size + len(self._more(taken)) <= max_chars:
                best = taken
            else:
                break
            size += len(self.rows[taken]) + 1
        if best is not None and len(self.render(options, graph, best)) > max_chars:
            return None  # cannot happen: the sizes above are exact
        return best

    def _more(self, shown: int) -> str:
        rest = self.rows[shown:]
        if not rest:
            return ""
        text = (f"... and {len(rest)} more key{'s' if len(rest) != 1 else ''}: "
                f"{counts(self.rest_kinds[shown])}")
        return f"| {_escape(text)} |  |  |  |  |"

    def _head(self, options: _Options) -> list[str]:
        return ["### Plan", "", self.headline, "", "#### Directives", "",
                *_directive_lines(self.directives, None if options.lists else DIRECTIVE_NAMES)]

    def _table(self, rows: int) -> list[str]:
        lines = ["", f"#### Per key ({len(self.rows)})", ""]
        if not self.rows:
            return [*lines, NO_ROWS]
        more = self._more(rows)
        return [*lines, TABLE_HEAD, *self.rows[:rows], *([more] if more else [])]

    def _tail(self, options: _Options, graph: str | None) -> list[str]:
        lines: list[str] = []
        if self.others:
            lines += ["", "#### Not tied to a key", "", *self.others]
        for title, groups in (("Reused from earlier builds", self.reused),
                              ("Skipped", self.skipped)):
            if groups:
                total = sum(len(labels) for _, _, labels in groups)
                lines += ["", f"#### {title} ({total})", ""]
                if options.groups:
                    lines += [_group_line(why, kinds, labels, options.lists)
                              for why, kinds, labels in groups]
                else:
                    every: Counter[str] = Counter()
                    for _, kinds, _ in groups:
                        every.update(kinds)
                    lines.append(f"- {counts(every)} ({len(groups)} reasons)")
        if self.task_count:
            lines += ["", "#### Graph", ""]
            if options.graph and graph is not None:
                lines += ["```mermaid", graph, "```"]
            else:
                lines.append(f"graph omitted: {self.task_count} tasks"
                             + (" (too long for the check run)" if graph is not None else
                                f" (more than {MERMAID_MAX_EDGES} edges, mermaid's limit)"))
        return lines


def _kind_rank(kind: str) -> tuple[int, str]:
    order = list(KIND_NAMES)
    return (order.index(kind), "") if kind in KIND_NAMES else (len(order), kind)


def _groups(labels: dict[str, str], known: Iterable[str]
            ) -> list[tuple[str, Counter[str], list[str]]]:
    """(why, count per kind, labels) per distinct reason, in order of first appearance."""
    grouped: dict[str, list[str]] = {}
    for label, why in labels.items():
        grouped.setdefault(why, []).append(label)
    return [(why, Counter(kind_of_label(label, known) for label in group), sorted(group))
            for why, group in grouped.items()]


def _group_line(why: str, kinds: Counter[str], labels: list[str], lists: bool) -> str:
    line = f"- {_oneline(why)}: {counts(kinds)}"
    if lists and len(labels) <= SHORT_LIST:
        line += " (" + ", ".join(_oneline(label) for label in labels) + ")"
    return line


def _headline(plan: Plan) -> str:
    kinds = Counter(task.kind for task in plan.tasks.values())
    params: dict[str, Any] = plan.parameters
    event = str(params.get("tasks_for") or "unknown event")
    if params.get("cib_pull_request"):
        action = params.get("cib_pull_request_action")
        event += f" #{params['cib_pull_request']}" + (f" ({action})" if action else "")
    environment = params.get("cib_environment")
    if environment:
        event += f", environment {environment}"
    head = str(params.get("head_rev") or "")
    if head:
        event += f", head {_code(head[:12])}"
    n = len(plan.tasks)
    what = f" ({counts(kinds)})" if kinds else ""
    return _oneline(f"**{n} task{'s' if n != 1 else ''} to run**{what}; "
                    f"{len(plan.built)} reused from earlier builds; {len(plan.skipped)} "
                    f"skipped. Event: {event}.")


def _directive_lines(directives: Directives, names: int | None) -> list[str]:
    """The directives of the commit message, one bullet each; `none` when there are none."""
    lines = []
    flags = directives.to_json()
    for name, value in flags.items():
        if value is True:
            lines.append(f"- {_code(name.replace('_', '-'))}")
    for verb in VERBS:
        chosen = getattr(directives, verb)
        for kind in FILTER_TYPES:
            values = list(getattr(chosen, kind))
            if not values:
                continue
            shown = values if names is None else values[:names]
            more = f" ... and {len(values) - len(shown)} more" if len(values) > len(shown) \
                else ""
            lines.append(f"- {_code(f'{verb} {kind}: ' + ', '.join(shown))}{more}")
    ignored = list(directives.ignored)
    if ignored:
        shown = ignored if names is None else ignored[:names]
        more = f" ... and {len(ignored) - len(shown)} more" if len(ignored) > len(shown) \
            else ""
        lines.append("- ignored: " + ", ".join(_code(line) for line in shown) + more)
    return lines or ["none"]


def _graph(plan: Plan) -> str | None:
    """The mermaid flowchart, or None when mermaid would refuse it (too many edges)."""
    edges = sum(1 for task in plan.tasks.values() for dep in task.dependencies
                if dep in plan.tasks)
    return plan_mermaid(plan) if edges <= MERMAID_MAX_EDGES else None


def plan_mermaid(plan: Plan) -> str:
    """Mermaid flowchart of the planned graph (dependencies point at what they wait for)."""
    ids = {label: f"t{index}" for index, label in enumerate(plan.tasks)}
    lines = ["flowchart LR"]
    for label, task in plan.tasks.items():
        lines.append(f'  {ids[label]}["{label}<br/>{task.symbol}"]')
        lines += [f"  {ids[label]} --> {ids[dep]}" for dep in task.dependencies if dep in ids]
    return "\n".join(lines)
