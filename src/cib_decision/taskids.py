"""Task ids derived from the decision task id and a task's label (pure).

A decision task that runs again (a Taskcluster rerun, or a retry after a crash half-way through
submission) derives the same id for every label, so it completes the graph it started instead of
creating a second copy of it. Ids are v4 "nice" slugids, as the queue requires.
"""

from __future__ import annotations

import base64
import hashlib
import re

NICE_SLUGID = re.compile(
    r"^[A-Za-z0-9_-]{8}[Q-T][A-Za-z0-9_-][CGKOSWaeimquy26-][A-Za-z0-9_-]{10}[AQgw]$")


def task_id_for(decision_task_id: str, label: str) -> str:
    """The task id of `label` in the graph of `decision_task_id`."""
    raw = bytearray(hashlib.sha256(f"{decision_task_id}\0{label}".encode()).digest()[:16])
    raw[0] &= 0x7F  # "nice": the id never starts with '-'
    raw[6] = (raw[6] & 0x0F) | 0x40  # UUID version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return base64.urlsafe_b64encode(bytes(raw)).decode()[:22]
