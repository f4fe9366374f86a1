"""The plan as the decision's GitHub check run text (`cib plan --format markdown`).

Plans of real repositories are made in a subprocess (taskgraph registers one graph root per
process); the size rules are tested on synthetic plans, in this process.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from cib_decision.checkrun import MAX_TEXT, TABLE_HEAD, plan_markdown
from cib_decision.config import DirectorySource, load_fleet
from cib_decision.directives import Directives, Filter
from cib_decision.plan import Plan, PlannedTask

from .conftest import CONFIG_DIR, ROOT
from .repos import fleet_repo, git

CELL_SEPARATOR = re.compile(r"(?<!\\)\|")


@pytest.fixture(autouse=True)
def own_cache(monkeypatch, tmp_path_factory):
    """cib plan caches parsed config (by default under ~/.cache/cib); these tests use their own."""
    monkeypatch.setenv("CIB_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cib-cache"))


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A fleet repository: first commit, then one that changes win10-64's edition."""
    return fleet_repo(tmp_path_factory.mktemp("checkrun") / "images")


def markdown(*args: str) -> str:
    """`cib plan --format markdown ARGS` through cib_decision.cli.main, in a subprocess."""
    code = "import sys; from cib_decision.cli import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run([sys.executable, "-c", code, "plan", "--format", "markdown", *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def section(text: str, title: str) -> list[str]:
    """The non-empty lines of the `#### <title>` section."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"#### {title}"))
    body = []
    for line in lines[start + 1:]:
        if line.startswith("#### "):
            break
        if line:
            body.append(line)
    return body


def table_rows(text: str) -> list[list[str]]:
    """The cells of each row of the per-key table (after its two heading lines)."""
    rows = [line for line in section(text, "Per key") if line.startswith("|")]
    assert "\n".join(rows[:2]) == TABLE_HEAD
    return [[cell.strip() for cell in CELL_SEPARATOR.split(row)[1:-1]] for row in rows[2:]]


def test_the_bundled_fleets_whole_plan_has_every_key_in_the_table_and_draws_the_graph():
    text = markdown("--repo", str(ROOT), "--no-base")
    keys = set(load_fleet(DirectorySource(CONFIG_DIR)).keys)
    rows = {row[0]: row for row in table_rows(text)}
    assert set(rows) == keys
    assert all(row[4] == "nothing counts as built (--no-base)" for row in rows.values())
    assert rows["win10-64"][1] == "build"
    assert rows["win10-64"][2] == "3: azure/centralus, azure/eastus2, azure/westus2"
    assert rows["win10-64"][3] == "gecko-t/win10-64-azure"
    assert "\n```mermaid\nflowchart LR\n" in text and text.rstrip().endswith("```")
    assert section(text, "Directives") == ["none"]
    headline = text.splitlines()[2]
    assert headline.startswith("**60 tasks to run** (4 disk images, 13 machine images, "
                               "13 image tests, ")
    assert "0 reused from earlier builds; 0 skipped" in headline
    assert "Event: github-push, environment production, head `" in headline
    assert len(text) <= MAX_TEXT


def test_a_one_key_change_lists_only_that_key_with_the_changed_paths_and_the_rest_as_reused(
        repo):
    text = markdown("--repo", str(repo), "--head", "HEAD")
    assert table_rows(text) == [[
        "win10-64", "build", "3: azure/centralus, azure/eastus2, azure/westus2",
        "gecko-t/win10-64-azure", "image.edition; product-keys.yaml"]]
    assert section(text, "Reused from earlier builds (39)") == [
        "- done at the base revision with the same digest: 3 disk images, 10 machine images, "
        "10 image tests, 4 tags, 6 pools, 6 pool verifications"]
    assert "39 reused from earlier builds; 0 skipped" in text.splitlines()[2]


def test_a_directive_commit_shows_its_directives(tmp_path):
    path = fleet_repo(tmp_path / "images")
    git(path, "commit", "-q", "--allow-empty", "-m",
        "Rebuild win10's images\n\ninclude keys: win10-64\noverwrite-machine-image\nno-verify")
    text = markdown("--repo", str(path), "--head", "HEAD")
    assert section(text, "Directives") == [
        "- `overwrite-machine-image`", "- `no-verify`", "- `include keys: win10-64`"]
    [row] = table_rows(text)
    assert row[0] == "win10-64" and row[4] == "overwrite-machine-image"
    assert "pool verification" not in text.splitlines()[2]


def planned(label: str, kind: str, key: str | None, deps: list[str], reason: str,
            **attributes: str) -> PlannedTask:
    if key is not None:
        attributes["cib-key"] = key
    return PlannedTask(label, kind, "X(x)", deps, reason, {}, attributes)


def huge_plan(keys: int = 1000, targets: int = 6) -> Plan:
    """About 9000 tasks: per key a disk image, machine images, a tag and a pool (and a
    verification on every other key); plus reused and skipped tasks, and long directives."""
    names = [f"key-{i:04d}" for i in range(keys)]
    if keys > 7:
        names[7] = "odd|key\nwith a line break"
    tasks = [planned("task-env-cib", "task-env", None, [], "cib's code changed")]
    built, skipped = {}, {}
    for index, key in enumerate(names):
        name = f"key-{index:04d}"
        disk = f"disk-image-{name}"
        tasks.append(planned(disk, "disk-image", key, ["task-env-cib"],
                             "image.edition; packages.yaml"))
        images = []
        for target in range(targets):
            label = f"machine-image-{name}-azure-region{target}"
            images.append(label)
            tasks.append(planned(label, "machine-image", key, [disk, "task-env-cib"],
                                 f"target[azure/region{target}].bootstrap",
                                 **{"cib-target": f"azure/region{target}"}))
        tasks.append(planned(f"tag-{name}", "tag", key, images, "tag the new images"))
        pool = f"worker-pool-gecko-t-{name}"
        tasks.append(planned(pool, "worker-pool", key, [*images, f"tag-{name}"],
                             "deploy: capacity.maximum", **{"cib-pool": f"gecko-t/{name}"}))
        if index % 2:
            tasks.append(planned(f"verify-gecko-t-{name}", "verify", key, [pool],
                                 f"claim a task on gecko-t/{name}",
                                 **{"cib-pool": f"gecko-t/{name}"}))
        built[f"machine-image-{name}-amazon-us-east-1"] = "done at the base revision"
        built[f"verify-gecko-1-{name}"] = "done at the base revision"
        skipped[f"machine-image-{name}-google-us-central1"] = "google machine images are not " \
                                                              "built yet"
    directives = Directives(overwrite_machine_image=True, include=Filter(keys=tuple(names)),
                            ignored=("no-travis-ci",))
    parameters = {"tasks_for": "github-pull-request", "cib_pull_request": 9,
                  "cib_pull_request_action": "synchronize", "cib_environment": "staging",
                  "head_rev": "0123456789abcdef0123"}
    return Plan(directives, parameters, {t.label: t for t in tasks}, built, skipped)


@pytest.fixture(scope="module")
def huge():
    return huge_plan()


@pytest.mark.parametrize("max_chars", [MAX_TEXT, 12000, 3000])
def test_a_huge_plan_stays_within_the_budget_with_headline_directives_and_whole_rows(
        huge, max_chars):
    text = plan_markdown(huge, max_chars=max_chars)
    assert len(huge.tasks) > 9000
    assert len(text) <= max_chars
    lines = text.splitlines()
    assert lines[2].startswith(f"**{len(huge.tasks)} tasks to run** (1000 disk images, "
                               "6000 machine images, 1000 tags, 1000 pools, ")
    assert lines[2].endswith("2000 reused from earlier builds; 1000 skipped. Event: "
                             "github-pull-request #9 (synchronize), environment staging, "
                             "head `0123456789ab`.")
    directives = section(text, "Directives")
    assert directives[0] == "- `overwrite-machine-image`"
    assert directives[1].startswith("- `include keys: key-0000, key-0001, ")
    assert directives[1].endswith("key-0029` ... and 970 more")  # a long list: 30 names
    assert directives[-1] == "- ignored: `no-travis-ci`"
    for line in lines:  # no half table row
        if line.startswith("|") or line.endswith("|"):
            assert line.startswith("|") and line.endswith("|") and not line.endswith("\\|")
    rows = table_rows(text)
    assert all(len(row) == 5 for row in rows)
    shown, last = rows[:-1], rows[-1]
    match = re.fullmatch(r"\.\.\. and (\d+) more keys: (\d+) disk images, .*", last[0])
    assert match and int(match[1]) == int(match[2]) == 1000 - len(shown)
    assert "graph omitted: " in text and "```mermaid" not in text
    assert "- done at the base revision: 1000 machine images, 1000 pool verifications" in text


def test_the_huge_plan_keeps_every_row_when_the_budget_allows(huge):
    text = plan_markdown(huge, max_chars=10**7)
    rows = table_rows(text)
    assert len(rows) == 1000
    odd = next(row for row in rows if row[0].startswith("odd"))
    assert odd[0] == "odd\\|key with a line break"
    assert odd[1] == "build" and odd[2].startswith("6: azure/region0, azure/region1, ")
    assert odd[3] == "gecko-t/key-0007"
    assert odd[4] == ("image.edition; packages.yaml; target[azure/region0].bootstrap; "
                      "target[azure/region1].bootstrap; target[azure/region2].bootstrap; "
                      "target[azure/region3].bootstrap; target[azure/region4].bootstrap; "
                      "target[azure/region5].bootstrap; gecko-t/key-0007: capacity.maximum")
    assert "graph omitted: " in text  # mermaid draws at most 500 edges


def test_drops_the_graph_first_then_the_lists_then_rows():
    small = huge_plan(keys=4, targets=2)
    full = plan_markdown(small, max_chars=10**7)
    assert "```mermaid" in full
    assert "(machine-image-key-0000-amazon-us-east-1, " in full
    no_graph = plan_markdown(small, max_chars=len(full) - 1)
    assert "```mermaid" not in no_graph and f"graph omitted: {len(small.tasks)} tasks" in no_graph
    assert "(machine-image-key-0000-amazon-us-east-1, " in no_graph
    no_lists = plan_markdown(small, max_chars=len(no_graph) - 1)
    assert "(machine-image-key-0000-amazon-us-east-1, " not in no_lists
    assert len(table_rows(no_lists)) == 4
    fewer_rows = plan_markdown(small, max_chars=len(no_lists) - 1)
    assert table_rows(fewer_rows)[-1][0].startswith("... and ")
    with pytest.raises(ValueError):
        plan_markdown(small, max_chars=100)


def test_a_task_without_attributes_is_put_under_its_key():
    task = {"extra": {"treeherder": {"machine": {"platform": "win10-64"}}}}
    tasks = [PlannedTask("disk-image-win10-64", "disk-image", "D(disk)", [], "new key", {}),
             PlannedTask("machine-image-win10-64-azure-eastus2", "machine-image", "I(x)", [],
                         "new key", task),
             PlannedTask("purge-azure-eastus2", "purge", "P(x)", [], "remove resources", {})]
    plan = Plan(Directives(), {"tasks_for": "github-push"}, {t.label: t for t in tasks})
    text = plan_markdown(plan)
    assert table_rows(text) == [["win10-64", "build", "1: azure-eastus2", "-", "new key"]]
    assert section(text, "Not tied to a key") == ["- 1 purge: remove resources"]
