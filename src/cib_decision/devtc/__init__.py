"""A faithful local Taskcluster (queue, index, worker-manager, secrets, object) for development
and tests.

`DevTaskcluster` starts it; `cib dev-taskcluster` runs it in the foreground; the pytest plugin
`cib_decision.devtc.testing` provides the `dev_taskcluster` fixture.
"""

from __future__ import annotations

from .faults import FaultSettings
from .harness import DevTaskcluster

__all__ = ["DevTaskcluster", "FaultSettings"]
