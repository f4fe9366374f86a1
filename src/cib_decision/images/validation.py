"""A key's validation rules matched against a builder's logs (pure, but for `check_builder`,
the builders' one step that publishes the log and reports).

cloud-image-builder's `validation.instance.log` rules name a program and a pattern: before an
image was captured, the lines that program wrote on the builder (forwarded to Papertrail, one
file per program) had to match the pattern somewhere, or the build failed (exit 123) and the
builder was removed. We read the logs the cloud itself keeps of the builder instead (AWS
console output, the Azure run command's output; `CollectedLog`), where a program's lines look
like syslog's: `<program>: <message>` or `<program>[<pid>]: <message>`, after an optional
time stamp and host name. The bootstrap writes each execution's output as `<execution name>:
<line>` and its own progress as `cib: ...` (`cib: all 3 executions passed` at its end), so a
rule can name an execution, the bootstrap, or any program that logs to the console (sysprep,
cloud-init, ...). A rule passes when one of its program's messages matches (`re.search`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config.model import ImageTest, LogRule
from ..errors import BuildError
from .bootstrap import TEST_VERDICT

if TYPE_CHECKING:
    from .context import BuildContext

BUILDER_LOG = "builder.log"
BUILDER_LOGS = "builder-logs"  # one file per program of the key's `log`


def safe_name(program: str) -> str:
    """A program's name as a file name (what is not a letter, digit, `.`, `_` or `-` is `_`)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", program).lstrip(".") or "_"

# `program: message` or `program[pid]: message`, the first such token on the line.
_PROGRAM_LINE = re.compile(
    r"(?:^|\s)(?P<program>[A-Za-z0-9_.@/+-]+)(?:\[\d+\])?:\s(?P<message>.*)$")


@dataclass(frozen=True)
class CollectedLog:
    """What was read of a builder's logs: the text, and where each part came from."""

    text: str
    sources: tuple[str, ...]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class RuleResult:
    """One rule checked: how many lines its program wrote, and whether one matched."""

    rule: LogRule
    lines: int
    passed: bool

    def to_json(self) -> dict[str, Any]:
        return {**self.rule.to_json(), "lines": self.lines, "passed": self.passed}


def program_lines(text: str) -> dict[str, list[str]]:
    """The messages of each program in a log, by program name in lower case (programs are
    matched without regard to case, as Papertrail's search did)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = _PROGRAM_LINE.search(line.rstrip("\r"))
        if match:
            found.setdefault(match.group("program").lower(), []).append(match.group("message"))
    return found


def check_rules(rules: Iterable[LogRule], text: str) -> tuple[RuleResult, ...]:
    """Each rule against the log `text`."""
    by_program = program_lines(text)
    results = []
    for rule in rules:
        messages = by_program.get(rule.program.lower(), [])
        pattern = re.compile(rule.match)
        results.append(RuleResult(rule, len(messages),
                                  any(pattern.search(m) for m in messages)))
    return tuple(results)


def describe(result: RuleResult, log: CollectedLog) -> str:
    """One line: the rule, and what was searched."""
    where = " and ".join(log.sources) or "no log"
    if result.passed:
        return f"rule {result.rule.program!r} /{result.rule.match}/ passed"
    if not result.lines:
        return (f"rule {result.rule.program!r} /{result.rule.match}/ missed: no line of "
                f"program {result.rule.program!r} in {where} ({len(log.text.splitlines())} "
                "lines)")
    return (f"rule {result.rule.program!r} /{result.rule.match}/ missed: none of the "
            f"{result.lines} line{'s' if result.lines != 1 else ''} of program "
            f"{result.rule.program!r} in {where} matches")


_VERDICT = re.compile(r"^(?P<name>.+) (?P<verdict>passed|failed) \(exit (?P<code>-?\d+)\)$")


@dataclass(frozen=True)
class SmokeTestResult:
    """One smoke test's outcome, read from the test script's lines (`bootstrap.smoke_test_script`):
    its verdict, exit status (None: no verdict line, the test did not finish) and the SHA-256
    of its output lines."""

    name: str
    passed: bool
    exit_code: int | None
    output_sha256: str
    lines: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "exit_code": self.exit_code,
                "output_sha256": self.output_sha256}


def smoke_test_results(tests: Iterable[ImageTest], text: str) -> tuple[SmokeTestResult, ...]:
    """Each test's outcome in the log `text` of a test run; a test without a verdict line
    failed."""
    by_program = program_lines(text)
    verdicts = {}
    for message in by_program.get(TEST_VERDICT, []):
        found = _VERDICT.match(message)
        if found:
            verdicts[found.group("name")] = (found.group("verdict") == "passed",
                                             int(found.group("code")))
    results = []
    for test in tests:
        output = by_program.get(test.name.lower(), [])
        digest = hashlib.sha256("\n".join(output).encode("utf-8")).hexdigest()
        passed, code = verdicts.get(test.name, (False, None))
        results.append(SmokeTestResult(test.name, passed, code, digest, len(output)))
    return tuple(results)


def describe_smoke_test(result: SmokeTestResult) -> str:
    """One line: a test's outcome."""
    if result.exit_code is None:
        return f"test {result.name!r} failed: it wrote no verdict (it did not finish)"
    return (f"test {result.name!r} {'passed' if result.passed else 'failed'} (exit "
            f"{result.exit_code}, {result.lines} line{'s' if result.lines != 1 else ''} of "
            "output)")


class ValidationFailed(BuildError):
    """A builder whose logs miss a validation rule: its image is not captured (exit 3)."""


def enforce(target: str, results: tuple[RuleResult, ...], log: CollectedLog) -> None:
    """ValidationFailed naming every missed rule and what was searched, when one missed."""
    missed = [r for r in results if not r.passed]
    if missed:
        raise ValidationFailed(
            f"the builder of {target} missed {len(missed)} of {len(results)} validation "
            f"rule{'s' if len(results) != 1 else ''}; its image is not captured:\n"
            + "\n".join(f"  {describe(r, log)}" for r in missed))


def record(results: tuple[RuleResult, ...], log: CollectedLog) -> dict[str, Any]:
    """What a machine-image record says of the rules: each with its outcome, and the SHA-256
    of the log they were checked against (published beside it as `public/builder.log`)."""
    return {"rules": [r.to_json() for r in results], "log_sha256": log.sha256,
            "sources": list(log.sources)}


def check_builder(ctx: BuildContext, target: str, log: CollectedLog) -> dict[str, Any] | None:
    """Publish the builder's log (`public/builder.log`, and the lines of each program of the
    key's `log` as `public/builder-logs/<program>.log`) and match the key's rules against it:
    one line per rule; ValidationFailed (the build fails and its builder is cleaned up) when
    one missed; what the machine-image record says of them (None: the key has no rules)."""
    ctx.write_artifact(BUILDER_LOG, log.text)
    programs = ctx.key.log_programs
    if programs:  # `log`: what cloud-image-builder fetched, one file per program
        by_program = program_lines(log.text)
        for program in programs:
            lines = by_program.get(program.lower(), [])
            ctx.write_artifact(f"{BUILDER_LOGS}/{safe_name(program)}.log",
                               "".join(f"{line}\n" for line in lines))
    rules = ctx.key.log_rules
    if not rules:
        return None
    results = check_rules(rules, log.text)
    for result in results:
        ctx.progress.say(describe(result, log))
    enforce(target, results, log)
    ctx.progress.say(f"the builder of {target} passed {len(results)} validation rule"
                     f"{'s' if len(results) != 1 else ''}")
    return record(results, log)
