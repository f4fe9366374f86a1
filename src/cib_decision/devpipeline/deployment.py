"""The local deployment a push is played through: the local Taskcluster, the clouds its tasks
reach over HTTP (moto for AWS, the ARM/Blob fake for Azure, the Compute fake for Google), and
workers that appear as a
real deployment's would.

Workers are provisioned the way a deployment gets them, from what is pending:

- a task queue of the deployment's own builder pools (`<trust-domain>-<level>/<worker-type>`:
  decision, b-linux, images) gets up to `builders` local workers, as fxci's static and
  autoscaled builder pools give them;
- a task queue that is a worker pool in worker-manager gets one worker, as its provider would
  start one, only when the pool could start generic-worker: every launch config's
  `workerConfig` must pass generic-worker's config rules (`devworker.config`), and the image it
  names must exist in the local cloud. A pool that fails stays without workers and its tasks
  stay pending, as they would in a real deployment; `problems` says why;
- any other queue gets nothing.

Every worker is a `devworker.DevWorker` following generic-worker's rules. What a worker image
provides outside a task is given through `machine_env`: a git configuration that maps the
repository's GitHub URLs to the local repository (the image's `/etc/gitconfig`) and a pip
cache shared by the workers (a persistent cache directory of the image).
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import botocore.exceptions

from ..devclouds.aws import MotoServer
from ..devclouds.azure_server import AzureServer
from ..devclouds.google_server import GoogleServer
from ..devtc.harness import DevTaskcluster
from ..devworker import config as gw_config
from ..devworker.run import WorkerSettings
from ..devworker.worker import DevWorker

WORKER_GROUP = "local"
PROVISION_SECONDS = 0.5
_WINDOWS_PATH = re.compile(r"^[A-Za-z]:\\")


def clouds_secret_name(level: str) -> str:
    """The clouds secret tasks of `level` read (cloudcreds.py)."""
    return f"project/cib/level-{level}/clouds"


class LocalDeployment:
    """Start with `start()`, stop with `stop()` (or use it as a context manager). `log` gets
    one line per worker event. `clouds` shares another deployment's clouds."""

    def __init__(self, work_dir: Path, *, roles_file: Path, trust_domain: str = "cib",
                 levels: Iterable[str] = ("1", "3"), builders: int = 2,
                 machine_env: dict[str, str] | None = None,
                 log: Callable[[str], None] | None = None,
                 clouds: tuple[MotoServer, AzureServer] | None = None,
                 google: GoogleServer | None = None):
        self.work_dir = work_dir
        self.trust_domain = trust_domain
        self.levels = tuple(levels)
        self.builders = builders
        self.machine_env = dict(machine_env or {})
        self.log = log or (lambda line: None)
        self.tc = DevTaskcluster(roles_file=roles_file, claim_work_timeout=1.0)
        # another deployment's clouds (a second environment on the same cloud accounts),
        # started and stopped by their owner; moto keeps one state per process anyway
        self._own_clouds = clouds is None
        self.aws, self.azure = clouds or (MotoServer(), AzureServer())
        # shared with `clouds` when given (its owner starts and stops it), else our own
        self._own_google = google is None
        self.google = google or GoogleServer()
        self.workers: dict[str, list[DevWorker]] = {}
        self.problems: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._provisioner: threading.Thread | None = None

    # --- life cycle ------------------------------------------------------------------------

    def start(self) -> LocalDeployment:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.tc.start()
        if self._own_clouds:
            self.aws.start()
            self.azure.start()
        if self._own_google:
            self.google.start()
        for level in self.levels:
            self.tc.set_secret(clouds_secret_name(level),
                               {**self.aws.clouds_secret(), **self.azure.secret(),
                                **self.google.secret()})
        self._stopping.clear()
        self._provisioner = threading.Thread(target=self._provision_forever, daemon=True,
                                             name="dev-provisioner")
        self._provisioner.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._provisioner is not None:
            self._provisioner.join()
        with self._lock:
            workers = [w for pool in self.workers.values() for w in pool]
            self.workers = {}
        for worker in workers:
            worker.stop(timeout=30)
        if self._own_google:
            self.google.stop()
        if self._own_clouds:
            self.azure.stop()
            self.aws.stop()
        self.tc.stop()

    def __enter__(self) -> LocalDeployment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- provisioning ----------------------------------------------------------------------

    def _provision_forever(self) -> None:
        while not self._stopping.wait(PROVISION_SECONDS):
            try:
                self.provision()
            except Exception as problem:
                self.log(f"provisioning failed: {type(problem).__name__}: {problem}")

    def provision(self) -> None:
        """Start the workers the pending tasks' queues get (see the module's docstring)."""
        pending: dict[str, int] = {}
        for status in self.tc.statuses().values():
            if status["runs"] and status["runs"][-1]["state"] == "pending":
                queue = status["taskQueueId"]
                pending[queue] = pending.get(queue, 0) + 1
        if not pending:
            return
        pools = self.tc.worker_pools()
        for queue, count in sorted(pending.items()):
            with self._lock:
                have = len(self.workers.get(queue, []))
            if self._is_builder_queue(queue):
                for _ in range(min(count, self.builders) - have):
                    self._start_worker(queue, "linux")
            elif queue in pools and not have:
                platform = self._pool_platform(queue, pools[queue])
                if platform is not None:
                    self._start_worker(queue, platform)

    def serves(self, queue: str) -> bool:
        """True when a worker claims from `queue` or will be started for it."""
        with self._lock:
            if self.workers.get(queue):
                return True
        return self._is_builder_queue(queue)

    def _is_builder_queue(self, queue: str) -> bool:
        provisioner = queue.split("/", 1)[0]
        return any(provisioner == f"{self.trust_domain}-{level}" for level in self.levels)

    def _pool_platform(self, pool_id: str, pool: dict[str, Any]) -> str | None:
        """"windows" or "linux" when a provider could start generic-worker for the pool,
        else None (the reasons in `problems`)."""
        launch_configs = pool.get("config", {}).get("launchConfigs") or []
        found: list[str] = [] if launch_configs else ["the pool has no launch configs"]
        platforms = set()
        for index, launch_config in enumerate(launch_configs):
            worker_config = gw_config.from_worker_pool(launch_config.get("workerConfig") or {})
            found += [f"launch config {index}: {p}"
                      for p in gw_config.problems(worker_config, runner_supplied=True)]
            found += [f"launch config {index}: {p}"
                      for p in self._image_problems(pool["providerId"], launch_config)]
            location = str(worker_config.get("ed25519SigningKeyLocation", ""))
            platforms.add("windows" if _WINDOWS_PATH.match(location) else "linux")
        if len(platforms) > 1:
            found.append("launch configs mix Windows and Linux images")
        if found:
            if self.problems.get(pool_id) != found:
                self.log(f"{pool_id}: no worker starts: {'; '.join(found)}")
            self.problems[pool_id] = found
            return None
        self.problems.pop(pool_id, None)
        return platforms.pop()

    def _image_problems(self, provider_id: str, launch_config: dict[str, Any]) -> list[str]:
        """Why the launch config's image cannot boot here: it must exist in the local cloud."""
        provider = self.tc.providers.get(provider_id)
        if provider == "aws":
            image_id = (launch_config.get("launchConfig") or {}).get("ImageId")
            region = launch_config.get("region")
            try:
                images = self.aws.client("ec2", region).describe_images(
                    ImageIds=[image_id])["Images"] if image_id and region else []
            except botocore.exceptions.ClientError:  # InvalidAMIID.NotFound, .Malformed
                images = []
            return [] if images else [f"no AMI {image_id} in {region}"]
        if provider == "azure":
            reference = (launch_config.get("storageProfile") or {}).get("imageReference") or {}
            image_id = reference.get("id")
            if image_id and self.azure.fake.resource(image_id) is None:
                return [f"no Azure image {image_id}"]
            return []
        if provider == "google":
            disks = launch_config.get("disks") or [{}]
            source = str((disks[0].get("initializeParams") or {}).get("sourceImage") or "")
            match = re.search(r"projects/([^/]+)/global/images/([^/]+)$", source)
            if match is None or match.groups() not in self.google.fake.images:
                return [f"no Google image {source}"]
            return []
        return [f"provider {provider_id} ({provider}) starts no worker in the local deployment"]

    def _start_worker(self, queue: str, platform: str) -> None:
        with self._lock:
            number = len(self.workers.get(queue, [])) + 1
            worker_id = f"{queue.replace('/', '-')}-{number}"[-38:].lstrip("-_")
            home = self.work_dir / "workers" / worker_id
            settings = WorkerSettings(
                root_url=self.tc.root_url,
                credentials=self.tc.worker_credentials(queue, WORKER_GROUP, worker_id),
                task_queue_id=queue, worker_group=WORKER_GROUP, worker_id=worker_id,
                # one machine: the workers share the downloads cache (a task environment
                # is 52 MB; each worker fetching its own would be a gigabyte per push)
                tasks_dir=home / "tasks", downloads_dir=self.work_dir / "downloads",
                platform=platform, machine_env=self.machine_env,
                schemas=self.tc.schemas.store, logs_dir=self.work_dir / "logs")
            worker = DevWorker(settings, log=lambda line, w=worker_id: self.log(f"[{w}] {line}"))
            self.workers.setdefault(queue, []).append(worker.start())
        self.log(f"started worker {worker_id} ({platform}) for {queue}")


def git_url_rewrites(path: Path, repository: Path, urls: Iterable[str]) -> Path:
    """A git configuration (`GIT_CONFIG_SYSTEM`) in which each of `urls` reads `repository`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    for url in urls:
        subprocess.run(["git", "config", "--file", str(path), "--add",
                        f"url.{repository}.insteadOf", url], check=True)
    return path
