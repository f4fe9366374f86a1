"""What must be rebuilt between two revisions of the config, and why (pure)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .config.model import SHARED_FILES, Fleet, ImageKey
from .digests import applicable_shared_inputs, key_digests


@dataclass(frozen=True)
class ImageChange:
    rebuild: bool
    digest: str
    because: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TargetChange:
    target: str
    machine_image: ImageChange
    # why the target gets no task whatever changed (a disabled platform, a cloud cib does
    # not build on: selection.not_built); "" when it is built
    skipped: str = ""


@dataclass(frozen=True)
class PoolChange:
    pool: str
    update: bool
    because: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class KeyChange:
    key: str
    removed: bool
    disk_image: ImageChange
    targets: list[TargetChange]
    pools: list[PoolChange]


@dataclass(frozen=True)
class ChangeReport:
    base: str
    head: str
    keys: list[KeyChange]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def changed_keys(self) -> list[str]:
        """Keys (still present at head) with an image to rebuild or a pool to update."""
        return sorted(k.key for k in self.keys if not k.removed and (
            k.disk_image.rebuild
            or any(t.machine_image.rebuild and not t.skipped for t in k.targets)
            or any(p.update for p in k.pools)))


def compute_changes(base: Fleet | None, head: Fleet, base_rev: str, head_rev: str,
                    base_problem: str | None = None) -> ChangeReport:
    """Compare two fleets. `base` is None when the base revision has no usable config;
    `base_problem` then says why (it becomes the reason for every rebuild)."""
    keys: list[KeyChange] = []
    base_keys = base.keys if base else {}
    for name, key in head.keys.items():
        old = base_keys.get(name)
        if old is None:
            reason = base_problem or "new key"
            keys.append(_all_new(key, head, reason))
        else:
            assert base is not None
            keys.append(_compare(old, base, key, head))
        keys[-1] = _mark_skipped(keys[-1], key, head)
    for name, old in base_keys.items():
        if name not in head.keys:
            assert base is not None
            keys.append(_removed(old, base))
    keys.sort(key=lambda k: k.key)
    return ChangeReport(base_rev, head_rev, keys)


def _mark_skipped(change: KeyChange, key: ImageKey, fleet: Fleet) -> KeyChange:
    """`change` with each target's reason for getting no task, if it has one."""
    from .selection import not_built

    platforms = {t.id: t.platform for t in key.targets}
    return replace(change, targets=[
        replace(t, skipped=not_built(platforms[t.target], fleet) or "")
        for t in change.targets])


def _all_new(key: ImageKey, fleet: Fleet, reason: str) -> KeyChange:
    digests = key_digests(key, fleet.shared)
    return KeyChange(
        key.name, False, ImageChange(True, digests.disk, [reason]),
        [TargetChange(t.id, ImageChange(True, digests.machines[t.id], [reason]))
         for t in key.targets],
        [PoolChange(p.id, True, [reason]) for p in key.pools])


def _removed(key: ImageKey, fleet: Fleet) -> KeyChange:
    digests = key_digests(key, fleet.shared)
    return KeyChange(
        key.name, True, ImageChange(False, digests.disk, ["key removed"]),
        [TargetChange(t.id, ImageChange(False, digests.machines[t.id], ["key removed"]))
         for t in key.targets],
        [PoolChange(p.id, True, ["key removed"]) for p in key.pools])


def _compare(old: ImageKey, base: Fleet, new: ImageKey, head: Fleet) -> KeyChange:
    before, after = key_digests(old, base.shared), key_digests(new, head.shared)
    disk_because: list[str] = []
    if before.disk != after.disk:
        # the config text as written (`raw`), as the digests compare it
        for section in ("image", "iso"):
            disk_because += diff_paths(old.raw.get(section), new.raw.get(section), section)
        old_shared = applicable_shared_inputs(old, base.shared)
        new_shared = applicable_shared_inputs(new, head.shared)
        disk_because += [f"{name}.yaml" for name in SHARED_FILES
                         if old_shared[name] != new_shared[name]]
        disk_because = disk_because or ["digest rule changed"]
    old_targets = {t.id: t for t in old.targets}
    targets = []
    for target in new.targets:
        digest = after.machines[target.id]
        previous = old_targets.get(target.id)
        if previous is None:
            targets.append(TargetChange(target.id, ImageChange(True, digest, ["new target"])))
            continue
        because = list(disk_because)
        for field_name in ("bootstrap", "tag"):  # digests.machine_inputs, as written
            if previous.raw.get(field_name) != target.raw.get(field_name):
                because.append(f"target[{target.id}].{field_name}")
        rebuild = digest != before.machines[target.id]
        targets.append(TargetChange(target.id, ImageChange(rebuild, digest,
                                                           because if rebuild else [])))
    old_pools = {p.id: p for p in old.pools}
    new_pools = {p.id: p for p in new.pools}
    pools = []
    for pool_id, pool in new_pools.items():
        previous_pool = old_pools.get(pool_id)
        because = (["new pool"] if previous_pool is None  # any edit of the pool as written
                   else diff_paths(previous_pool.raw, pool.raw, ""))
        pools.append(PoolChange(pool_id, bool(because), because))
    pools += [PoolChange(pool_id, True, ["pool removed"])
              for pool_id in old_pools if pool_id not in new_pools]
    return KeyChange(new.name, False, ImageChange(before.disk != after.disk, after.disk,
                                                  disk_because), targets, pools)


def diff_paths(old: Any, new: Any, prefix: str) -> list[str]:
    """Dotted paths of the leaves that differ between two parsed YAML values."""
    if isinstance(old, dict) and isinstance(new, dict):
        paths = []
        for name in sorted(set(old) | set(new)):
            child = f"{prefix}.{name}" if prefix else str(name)
            if name not in old or name not in new:
                paths.append(child)
            else:
                paths += diff_paths(old[name], new[name], child)
        return paths
    if isinstance(old, list) and isinstance(new, list):
        paths = []
        for index in range(max(len(old), len(new))):
            child = f"{prefix}[{index}]"
            if index >= len(old) or index >= len(new):
                paths.append(child)
            else:
                paths += diff_paths(old[index], new[index], child)
        return paths
    if old == new and type(old) is type(new):
        return []
    return [prefix or "(whole file)"]
