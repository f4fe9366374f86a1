"""stats: `cib stats` of the decision's environment (the weekly `stats` cron job).

The task reads the index and the queue (public reads: decision index entries, task groups,
machine-image records) through taskcluster-proxy and writes only its own artifacts:
`public/stats.html` (the report with its charts) and `public/stats.json`; its log shows the
table. It reads the newest `STATS_DECISIONS` push decisions, a fixed window so that the task's
definition does not depend on the day the decision ran. Exit 75 (a service to ask again
later) has the queue run it again.
"""

from __future__ import annotations

from taskgraph.transforms.base import TransformSequence

from ..items import EnvironmentItem

transforms = TransformSequence()
transforms.add_validate(EnvironmentItem)

STATS_DECISIONS = 200


@transforms.add
def stats_task(config, items):
    for item in items:
        environment = item["environment"]
        yield {
            "cib-item": item,
            "description": f"Build statistics of {environment}: build times, queue waits, "
                           "failure and retry rates, copy times (cib stats)",
            "scopes": [],
            "cib-run": {"args": ["stats", "--environment", environment,
                                 "--project", config.params["project"],
                                 "--last", str(STATS_DECISIONS), "--artifacts", "artifacts"],
                        "artifacts": True, "max-run-time": 1800},
            "cib-treeherder": {"group": "B", "symbol": environment, "platform": "stats"},
        }
