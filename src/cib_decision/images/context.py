"""What every `cib image` command knows about the build it is part of: the fleet and digests at
the checked-out commit, the task it runs in, where it writes its artifacts, and how it reports."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..config import DirectorySource, Fleet, ImageKey, Target, load_fleet
from ..digests import KeyDigests, key_digests
from ..errors import CibError
from ..gitrepo import open_repo
from .progress import Progress

_COMMIT = re.compile(r"[0-9a-f]{40}")


def config_commit(config_dir: Path, environ: dict[str, str] | None = None) -> str:
    """The commit the config was read at: `CIB_HEAD_REV` when it is a full commit id (the
    task's checkout), else `HEAD` of the repository holding `config_dir`."""
    environ = os.environ if environ is None else environ
    rev = environ.get("CIB_HEAD_REV", "")
    if _COMMIT.fullmatch(rev):
        return rev
    return open_repo(config_dir).head.commit.hexsha


def task_id(environ: dict[str, str] | None = None) -> str:
    """The Taskcluster task this command runs in (`TASK_ID`, which workers set)."""
    environ = os.environ if environ is None else environ
    value = environ.get("TASK_ID")
    if not value:
        raise CibError("TASK_ID is not set: `cib image` runs inside a Taskcluster task "
                       "(set TASK_ID to the task's id to run it by hand)")
    return value


@dataclass
class BuildContext:
    """One build step of one key."""

    key: ImageKey
    fleet: Fleet
    digests: KeyDigests
    config_commit: str
    task_id: str
    environment: str
    artifacts: Path
    pull_request: int | None = None
    keep_resources: bool = False
    progress: Progress = field(default_factory=Progress)
    now: Any = field(default=lambda: datetime.now(UTC))

    def target(self, target_id: str) -> Target:
        """The key's target `target_id`; a clear error naming the known ones otherwise."""
        for target in self.key.targets:
            if target.id == target_id:
                return target
        known = ", ".join(t.id for t in self.key.targets)
        raise CibError(f"{self.key.name} has no target {target_id!r} (its targets: {known})")

    def write_artifact(self, name: str, content: str) -> Path:
        """Write `public/<name>` (the task's artifacts directory is published as `public`)."""
        path = self.artifacts / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        self.progress.say(f"wrote public/{name}")
        return path


def load_context(key: str, config_dir: str | Path, *, artifacts: str | Path,
                 pull_request: int | None = None, keep_resources: bool = False,
                 progress: Progress | None = None, environ: dict[str, str] | None = None
                 ) -> BuildContext:
    """The build context of `key` from the config directory and the task's environment."""
    environ = dict(os.environ if environ is None else environ)
    fleet = load_fleet(DirectorySource(str(config_dir)))
    if key not in fleet.keys:
        raise CibError(f"no image key {key!r} in {config_dir} (keys: "
                       f"{', '.join(sorted(fleet.keys))})")
    image_key = fleet.keys[key]
    return BuildContext(
        key=image_key, fleet=fleet, digests=key_digests(image_key, fleet.shared),
        config_commit=config_commit(Path(config_dir), environ), task_id=task_id(environ),
        environment=environ.get("CIB_ENVIRONMENT", ""), artifacts=Path(artifacts),
        pull_request=pull_request or None, keep_resources=keep_resources,
        progress=progress or Progress())


def read_json_file(path: str | Path) -> Any:
    """A JSON file; CibError naming it when it cannot be read or parsed."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CibError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise CibError(f"{path} is not JSON: {exc}") from None
