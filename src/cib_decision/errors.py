"""Errors that are the user's to fix: the CLI prints them without a traceback and exits 2."""

from __future__ import annotations

from dataclasses import dataclass


class CibError(Exception):
    """Base of every error caused by input (config, commit message, git revisions, arguments)."""

    exit_code = 2


@dataclass(frozen=True, order=True)
class Problem:
    """One problem in one config file, with the line it is on when known."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


# problems a config error's message lists (all of them stay in `problems`)
MAX_LISTED_PROBLEMS = 100


class ConfigError(CibError):
    """The config directory has one or more problems: the message lists the first
    `MAX_LISTED_PROBLEMS` (by file and line) and counts the rest."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(set(problems))
        count = len(self.problems)
        header = f"config has {count} problem{'s' if count != 1 else ''}:"
        more = count - MAX_LISTED_PROBLEMS
        super().__init__("\n".join([
            header, *(f"  {p}" for p in self.problems[:MAX_LISTED_PROBLEMS]),
            *([f"  ... and {more} more"] if more > 0 else [])]))


class GitError(CibError):
    """A repository or revision that cannot be read."""


class BuildError(CibError):
    """An image build that failed in the cloud (a bootstrap that never finished, an image that
    went to `failed`): exit 3. Running the task again will not help without a change."""

    exit_code = 3


class TransientError(CibError):
    """A cloud error that a later attempt may not meet (quota exhausted, capacity, throttling,
    a service error): exit 75 (EX_TEMPFAIL), which image tasks' definitions retry on."""

    exit_code = 75
