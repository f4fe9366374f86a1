"""A local worker as a process of its own (`python -m cib_decision.devworker`), as
generic-worker runs on a machine: what a test kills to see what the queue does with the run.

    python -m cib_decision.devworker --root-url URL --queue cib-3/b-linux \\
        --worker-id w1 --work-dir DIR      # credentials in $TASKCLUSTER_CLIENT_ID/_ACCESS_TOKEN

It claims until SIGTERM or SIGINT (a graceful stop: what runs is aborted as a worker
shutdown, its artifacts uploaded); SIGKILL leaves the claimed run to the queue's claim expiry.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from .run import WorkerSettings
from .worker import DevWorker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cib_decision.devworker")
    parser.add_argument("--root-url", required=True)
    parser.add_argument("--queue", required=True, help="taskQueueId to claim from")
    parser.add_argument("--worker-group", default="local")
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--platform", choices=("linux", "windows"), default="linux")
    args = parser.parse_args(argv)
    try:
        credentials = {"clientId": os.environ["TASKCLUSTER_CLIENT_ID"],
                       "accessToken": os.environ["TASKCLUSTER_ACCESS_TOKEN"]}
    except KeyError as missing:
        print(f"error: ${missing.args[0]} is not set (the worker's credentials)",
              file=sys.stderr)
        return 2
    worker = DevWorker(WorkerSettings(
        root_url=args.root_url, credentials=credentials, task_queue_id=args.queue,
        worker_group=args.worker_group, worker_id=args.worker_id,
        tasks_dir=args.work_dir / "tasks", downloads_dir=args.work_dir / "downloads",
        platform=args.platform), log=lambda line: print(line, flush=True))
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    worker.start()
    print(f"claiming from {args.queue} as {args.worker_group}/{args.worker_id}", flush=True)
    stopped.wait()
    worker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
