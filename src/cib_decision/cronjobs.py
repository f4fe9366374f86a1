"""`.cron.yml`: the repository's scheduled jobs, and which target-tasks method each runs.

The file has the format of gecko's and fxci's cron (`build-decision`): a list of jobs, each
`{name, job: {type: decision-task, treeherder-symbol, target-tasks-method}, when: [...]}`.
fxci's cron task reads it at the repository's head every 15 minutes and, for each job due,
renders `.taskcluster.yml` with `tasks_for: cron` and `cron.job_name`; the decision task gets
the job's name as `CIB_CRON_JOB`. The decision reads the same file (`target_method`) to
choose the job's target-tasks method: a job that names none, or a name the file does not have
(a hook fired by hand, the local pipeline's `nightly`), runs `cib`, the graph of a push.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import CibError

CRON_FILE = ".cron.yml"
DEFAULT_METHOD = "cib"  # the graph of a push to main
JOB_TYPE = "decision-task"


@dataclass(frozen=True)
class CronJob:
    """One job of `.cron.yml`: its name, Treeherder symbol and target-tasks method."""

    name: str
    symbol: str
    target_tasks_method: str
    when: tuple[dict[str, Any], ...]


def parse(text: str, where: str = CRON_FILE) -> dict[str, CronJob]:
    """The jobs of a `.cron.yml` text, by name; CibError naming the job and field when the
    file is not in the format above."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise CibError(f"{where}: not YAML: {error}") from None
    jobs = data.get("jobs") if isinstance(data, dict) else None
    if not isinstance(jobs, list):
        raise CibError(f"{where}: needs `jobs`, a list of cron jobs")
    found: dict[str, CronJob] = {}
    for number, entry in enumerate(jobs, 1):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name:
            raise CibError(f"{where}: job {number} has no `name`")
        job = entry.get("job")
        if not isinstance(job, dict) or job.get("type") != JOB_TYPE:
            raise CibError(f"{where}: job {name}: `job.type` must be {JOB_TYPE}")
        method = job.get("target-tasks-method", DEFAULT_METHOD)
        symbol = job.get("treeherder-symbol")
        when = entry.get("when", [])
        if not isinstance(method, str) or not isinstance(symbol, str) or \
                not isinstance(when, list):
            raise CibError(f"{where}: job {name}: `job.treeherder-symbol` and "
                           "`job.target-tasks-method` are strings, `when` a list")
        if name in found:
            raise CibError(f"{where}: job {name} is there twice")
        found[name] = CronJob(name, symbol, method, tuple(when))
    return found


def load(repo_root: Path) -> dict[str, CronJob]:
    """The jobs of the repository's `.cron.yml` (none when it has no such file)."""
    path = repo_root / CRON_FILE
    if not path.is_file():
        return {}
    return parse(path.read_text(encoding="utf-8"), str(path))


def target_method(jobs: dict[str, CronJob], job_name: str) -> str:
    """The target-tasks method of cron job `job_name` (`cib` for a job the file has not)."""
    job = jobs.get(job_name)
    return job.target_tasks_method if job else DEFAULT_METHOD
