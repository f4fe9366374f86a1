"""Input errors where reviewers look: a config or directive error of a decision (or of the
untrusted pull request's config check) as the task's GitHub check run shows it.

Taskcluster's GitHub service reads two artifacts of every task with the `checks` route
(`services/github/src/handlers/status.js`): `public/github/customCheckRunText.md`, appended to
the check run's text, and `public/github/customCheckRunAnnotations.json`, an array of GitHub
annotation objects it passes on unchanged (one request: GitHub takes at most 50), placed on
the changed lines of the pull request. A config problem becomes an annotation on its file and
line; a directive problem is in the text (a commit message is no file of the diff).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .directives import DirectiveError
from .errors import CibError, ConfigError

# relative to the directory the task publishes as `public/`
TEXT_ARTIFACT = Path("github", "customCheckRunText.md")
ANNOTATIONS_ARTIFACT = Path("github", "customCheckRunAnnotations.json")
# GitHub's limit per check-run request; the service sends every annotation in one request
MAX_ANNOTATIONS = 50
# GitHub refuses check-run text above 65,535 characters (the request fails and the check run
# is not updated). The GitHub service appends ours whole, after its own header (task links,
# status, up to 50 artifact links: a few thousand characters), and only then sizes the live-log
# excerpt to what is left of its 60,000-character budget. 30,000 keeps the whole well under
# GitHub's limit and leaves the log excerpt half of the service's budget.
MAX_TEXT = 30000


def annotations(error: ConfigError, repo_root: Path) -> list[dict[str, Any]]:
    """One `failure` annotation per problem, on its file (relative to `repo_root`) and line
    (1 when the problem has none: a file that does not parse at all, a missing file)."""
    found = []
    root = repo_root.resolve()
    for problem in error.problems[:MAX_ANNOTATIONS]:
        path = Path(problem.file)
        try:
            relative = (path if path.is_absolute() else Path.cwd() / path).resolve() \
                .relative_to(root)
        except ValueError:
            relative = path
        line = max(problem.line, 1)
        found.append({"path": relative.as_posix(), "start_line": line, "end_line": line,
                      "annotation_level": "failure", "title": "cib: config problem",
                      "message": problem.message})
    return found


def error_text(error: CibError) -> str:
    """The check run text of an input error (markdown, within `MAX_TEXT`)."""
    if isinstance(error, ConfigError):
        shown = error.problems[:MAX_ANNOTATIONS]
        head = (f"### The config has {len(error.problems)} "
                f"problem{'s' if len(error.problems) != 1 else ''}\n\n"
                "Nothing was submitted. Each problem is also an annotation on its line.")
        body = [f"- `{p.file}:{p.line or 1}`: {p.message}" for p in shown]
        more = len(error.problems) - len(shown)
        if more:
            body.append(f"- ... and {more} more (`cib config check` lists them all)")
    elif isinstance(error, DirectiveError):
        head = ("### The commit message has directive problems\n\n"
                "Nothing was submitted. Fix the lines below (`cib directives` checks them).")
        body = [f"- line {p.line}: `{p.text}`: {p.message}" if p.line else
                f"- the message as a whole: {p.message}" for p in error.problems]
        if error.more:
            body.append(f"- ... and {error.more} more (`cib directives` lists them)")
    else:
        head, body = "### The decision refused its input\n\nNothing was submitted.", [
            f"```\n{error}\n```"]
    text = "\n".join([head, "", *body]) + "\n"
    if len(text) <= MAX_TEXT:
        return text
    kept, size = [], len(head) + 200
    for line in body:
        if size + len(line) + 1 > MAX_TEXT:
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join([head, "", *kept, f"- ... and {len(body) - len(kept)} more"]) + "\n"


def write_error_report(error: CibError, artifacts: Path, repo_root: Path) -> list[Path]:
    """Write the check run text (and, for a config error, the annotations) of `error` under
    `artifacts`; the files written. Errors of other kinds write nothing."""
    if not isinstance(error, ConfigError | DirectiveError):
        return []
    written = [artifacts / TEXT_ARTIFACT]
    written[0].parent.mkdir(parents=True, exist_ok=True)
    written[0].write_text(error_text(error), encoding="utf-8")
    if isinstance(error, ConfigError):
        path = artifacts / ANNOTATIONS_ARTIFACT
        path.write_text(json.dumps(annotations(error, repo_root), indent=2), encoding="utf-8")
        written.append(path)
    return written
