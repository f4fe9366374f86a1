"""What every cloud's machine-image build does the same way: the tags that identify an image of
a key and machine digest (what reuse looks for), every tag of a built image, the tags of a
builder's resources (what purge tasks look for), the next free image name, and the guard that
cleans a builder's resources up (or keeps them) whatever happens."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator

from ..config import Target
from ..errors import BuildError
from ..naming import image_name
from .context import BuildContext

TAG_PREFIX = "cib:"


def identity_tags(key: str, machine_digest: str) -> dict[str, str]:
    """The tags that identify an image of `key` for one machine digest (what reuse looks for)."""
    return {f"{TAG_PREFIX}key": key, f"{TAG_PREFIX}machine-digest": machine_digest}


def machine_image_tags(*, name: str, key: str, target: str, machine_digest: str,
                       disk_digest: str, config_commit: str, build_task_id: str,
                       environment: str, release_sha256: str | None = None
                       ) -> dict[str, str]:
    """Every tag of a machine image (and of its snapshots and copies): the one place these
    tags are named. The build sets all but `cib:release-sha256`, which `cib image tag` adds
    (the seal of the release record that lists the image)."""
    tags = {"Name": name, **identity_tags(key, machine_digest),
            f"{TAG_PREFIX}disk-digest": disk_digest,
            f"{TAG_PREFIX}config-commit": config_commit,
            f"{TAG_PREFIX}build-task-id": build_task_id,
            f"{TAG_PREFIX}environment": environment or "unknown",
            f"{TAG_PREFIX}target": target}
    if release_sha256 is not None:
        tags[f"{TAG_PREFIX}release-sha256"] = release_sha256
    return tags


def image_tags(ctx: BuildContext, target: Target, name: str) -> dict[str, str]:
    """Every tag of an image this build makes (and of its snapshots and copies)."""
    return machine_image_tags(
        name=name, key=ctx.key.name, target=target.id,
        machine_digest=ctx.digests.machines[target.id], disk_digest=ctx.digests.disk,
        config_commit=ctx.config_commit, build_task_id=ctx.task_id,
        environment=ctx.environment)


def builder_tags(ctx: BuildContext, target: Target, name: str) -> dict[str, str]:
    """Tags of the builder's resources: what purge tasks recognise, and the target's own tags
    (which the bootstrap reads through instance metadata)."""
    own = target.tags
    return {**own, "Name": f"cib-builder-{name}", f"{TAG_PREFIX}key": ctx.key.name,
            f"{TAG_PREFIX}build-task-id": ctx.task_id, f"{TAG_PREFIX}builder": "true"}


def revision(name: str) -> int:
    """The revision of an image name (`<key>-r3-<digest>` is 3, a plain name 1)."""
    match = re.search(r"-r(\d+)-[0-9a-f]{12}$", name)
    return int(match.group(1)) if match else 1


def next_name(key: str, digest: str, taken: Iterable[str], pull_request: int | None) -> str:
    """The first of `<key>-<digest>`, `<key>-r2-<digest>`, ... not in `taken`."""
    taken = set(taken)
    number = 1
    while (name := image_name(key, digest, pull_request=pull_request,
                              revision=number)) in taken:
        number += 1
    return name


@contextlib.contextmanager
def builder_resources(ctx: BuildContext, kept: Callable[[], list[str]],
                      clean_up: Callable[[], None]) -> Iterator[None]:
    """Around the part of a build that creates builder resources: a failed build says what
    happens to them; afterwards they are cleaned up, or with `--keep-resources` named (`kept()`)
    and left."""
    try:
        yield
    except BuildError:
        ctx.progress.say("the build failed; " + ("keeping the builder's resources "
                                                 "(--keep-resources)" if ctx.keep_resources
                                                 else "cleaning up"))
        raise
    finally:
        if ctx.keep_resources:
            left = kept()
            if left:
                ctx.progress.say(f"--keep-resources: leaving {', '.join(left)}")
        else:
            clean_up()
