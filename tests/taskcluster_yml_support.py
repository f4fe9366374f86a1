"""`.taskcluster.yml` for the tests (test helper): the template, the context a Taskcluster hook
(cron, action) renders it with, and its rendering into tasks."""

from __future__ import annotations

from typing import Any

import slugid
import yaml

from cib_decision import github_events as events
from cib_decision.github_events import repository

from .conftest import ROOT

TEMPLATE = yaml.safe_load((ROOT / ".taskcluster.yml").read_text())
REPO = repository("example/images")
HEAD = "c" * 40
NOW = "2026-11-21T12:00:00.000Z"


def hook_context(tasks_for: str, **extra: Any) -> dict[str, Any]:
    return {"tasks_for": tasks_for, "now": NOW, "ownTaskId": slugid.nice(),
            "taskcluster_root_url": "https://tc.example.com",
            "repository": {"url": REPO["html_url"], "project": "images", "level": "3"},
            # as fxci's build-decision sends a git push (no base revision, no pushlog)
            "push": {"branch": "main", "revision": HEAD, "owner": "cron"}, **extra}


def render(context: dict[str, Any]) -> list[dict[str, Any]]:
    return events.render_tasks(TEMPLATE, context)
