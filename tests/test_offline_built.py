"""The offline optimization of `cib plan` builds the set of tasks built at the base once per
graph, not once per task it is asked about (a thousand-key plan asks some 14,000 times).
taskgraph's parameters are a read-only dict (`Parameters` is one): the same list every time."""

from __future__ import annotations

from types import SimpleNamespace

from taskgraph.util.readonlydict import ReadOnlyDict

from cib_decision.taskgraph.items import cache_entry
from cib_decision.taskgraph.offline import BuiltAtBase


def _task(name: str, digest: str) -> SimpleNamespace:
    return SimpleNamespace(attributes={"cached_task": {
        "type": "disk-image", "name": name, "digest": digest}})


def test_the_set_is_made_once_per_list_of_built_tasks(monkeypatch):
    digest = [f"{i:04x}" + "0" * 60 for i in range(2000)]
    built = [cache_entry("disk-image", f"key-{i}", digest[i]) for i in range(1000)]
    params = ReadOnlyDict(cib_built_tasks=built)
    strategy = BuiltAtBase()
    made = []
    monkeypatch.setattr("cib_decision.taskgraph.offline.frozenset",
                        lambda items: made.append(1) or frozenset(items), raising=False)

    answers = [strategy.should_replace_task(_task(f"key-{i}", digest[i]), params, None, None)
               for i in range(0, 2000, 2)]

    assert len(made) == 1
    assert answers[:3] == ["built-at-base-disk-image-key-0-000000000000",
                           "built-at-base-disk-image-key-2-000200000000",
                           "built-at-base-disk-image-key-4-000400000000"]
    assert answers[-1] is False  # key-1998 was not built at the base


def test_a_new_list_is_a_new_set():
    strategy = BuiltAtBase()
    first = ReadOnlyDict(cib_built_tasks=[cache_entry("tag", "a", "1")])
    second = ReadOnlyDict(cib_built_tasks=[cache_entry("tag", "b", "2")])
    assert strategy.built(first) == {"tag/a/1"}
    assert strategy.built(second) == {"tag/b/2"}
    assert strategy.built(ReadOnlyDict()) == frozenset()


def test_tasks_sharing_a_digest_get_placeholders_of_their_own():
    digest = "ab" * 32
    params = ReadOnlyDict(cib_built_tasks=[cache_entry("machine-image", name, digest)
                                           for name in ("key-aws-use1", "key-aws-usw2")])
    strategy = BuiltAtBase()
    answers = {strategy.should_replace_task(SimpleNamespace(attributes={"cached_task": {
        "type": "machine-image", "name": name, "digest": digest}}), params, None, None)
        for name in ("key-aws-use1", "key-aws-usw2")}
    assert answers == {"built-at-base-machine-image-key-aws-use1-abababababab",
                       "built-at-base-machine-image-key-aws-usw2-abababababab"}
