"""Faults on demand (5xx answers, latency, dropped connections) and the counters of what the
local Taskcluster did. Both are thread-safe and may change while the server runs."""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

ERROR_STATUSES = (500, 502, 503)


@dataclass(frozen=True)
class FaultSettings:
    """How often to fail. Rates are probabilities per API request (0..1)."""

    error_rate: float = 0.0
    latency_ms: int = 0
    drop_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("error_rate", "drop_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {value}")
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must not be negative, not {self.latency_ms}")

    def to_json(self) -> dict[str, Any]:
        """`{"errorRate", "latencyMs", "dropRate"}`, as `/dev/faults` reads and writes them."""
        return {"errorRate": self.error_rate, "latencyMs": self.latency_ms,
                "dropRate": self.drop_rate}


@dataclass(frozen=True)
class Fault:
    """What to do to one request: nothing (`kind` None), answer `status`, or drop the
    connection before (`drop-before`) or after (`drop-after`) applying the request."""

    kind: str | None = None
    status: int = 0
    latency_ms: int = 0


class Faults:
    """The current settings and a seeded random source deciding each request's fault."""

    KINDS = ("500", "502", "503", "drop-before", "drop-after")

    def __init__(self, settings: FaultSettings | None = None, seed: int | None = None):
        self._lock = threading.Lock()
        self._settings = settings or FaultSettings()
        self._random = random.Random(seed)
        self._script: list[str] = []

    @property
    def settings(self) -> FaultSettings:
        """The current settings."""
        with self._lock:
            return self._settings

    def set(self, settings: FaultSettings, seed: int | None = None) -> None:
        """Replace the settings (takes effect with the next request), forget scripted faults,
        and re-seed the random source when `seed` is given."""
        with self._lock:
            self._settings = settings
            self._script = []
            if seed is not None:
                self._random.seed(seed)

    def script(self, kinds: list[str]) -> None:
        """Faults for the next requests, in order (`"500"`, `"502"`, `"503"`, `"drop-before"`,
        `"drop-after"`, or `""` for none), before the random ones resume."""
        unknown = [k for k in kinds if k and k not in self.KINDS]
        if unknown:
            raise ValueError(f"unknown fault kind(s) {unknown}; known: {self.KINDS}")
        with self._lock:
            self._script += kinds

    def decide(self) -> Fault:
        """The fault for one request, decided before the request is applied."""
        with self._lock:
            s = self._settings
            if self._script:
                kind = self._script.pop(0)
                if kind in ("drop-before", "drop-after"):
                    return Fault(kind, latency_ms=s.latency_ms)
                if kind:
                    return Fault(kind, status=int(kind), latency_ms=s.latency_ms)
                return Fault(latency_ms=s.latency_ms)
            roll = self._random.random()
            if roll < s.drop_rate:
                kind = "drop-before" if self._random.random() < 0.5 else "drop-after"
                return Fault(kind, latency_ms=s.latency_ms)
            if roll < s.drop_rate + s.error_rate * (1 - s.drop_rate):
                status = self._random.choice(ERROR_STATUSES)
                return Fault(str(status), status=status, latency_ms=s.latency_ms)
            return Fault(latency_ms=s.latency_ms)


class Stats:
    """Counters: API requests per method, faults per kind, responses per status, tasks
    created."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self._requests: Counter[str] = Counter()
            self._faults: Counter[str] = Counter()
            self._statuses: Counter[int] = Counter()
            self._created: list[str] = []
            self._schemas: Counter[str] = Counter()

    def request(self, method: str) -> None:
        """Count an API request to `method` (`queue.createTask`)."""
        with self._lock:
            self._requests[method] += 1

    def fault(self, kind: str) -> None:
        """Count an injected fault (`500`, `502`, `503`, `drop-before`, `drop-after`)."""
        with self._lock:
            self._faults[kind] += 1

    def response(self, status: int) -> None:
        """Count an API response by HTTP status."""
        with self._lock:
            self._statuses[status] += 1

    def schema_served(self, path: str) -> None:
        """Count a schema served (`/schemas/...`: what a task without a schema directory
        fetches)."""
        with self._lock:
            self._schemas[path] += 1

    def task_created(self, task_id: str) -> None:
        """Count a task created (not an idempotent repeat)."""
        with self._lock:
            self._created.append(task_id)

    def snapshot(self) -> dict[str, Any]:
        """`{"requests": {method: n}, "faults": {kind: n}, "schemasServed": {path: n},
        "responses": {status: n},
        "tasksCreated": n, "createdTaskIds": [...]}` (statuses as strings, for JSON)."""
        with self._lock:
            return {"requests": dict(self._requests), "faults": dict(self._faults),
                    "schemasServed": dict(self._schemas),
                    "responses": {str(k): v for k, v in sorted(self._statuses.items())},
                    "tasksCreated": len(self._created), "createdTaskIds": list(self._created)}
