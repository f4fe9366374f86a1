"""One claimed task, run as generic-worker runs it (`workers/generic-worker/main.go:TaskRun`):
features started in its order (backing log, payload validation, taskcluster-proxy, mounts,
maxRunTime, commands), stopped in reverse, artifacts and logs uploaded, and only then the run
resolved; the first error decides how."""

from __future__ import annotations

import contextlib
import gzip
import json
import mimetypes
import os
import re
import shutil
import signal
import subprocess
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

import taskcluster

from ..tcschemas import SchemaStore
from .caches import CacheEntry, DirectoryCaches
from .proxy import TaskclusterProxy

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
PAYLOAD_SCHEMAS = {"linux": "/schemas/generic-worker/multiuser_posix.json",
                   "windows": "/schemas/generic-worker/multiuser_windows.json"}
LIVE_LOG, BACKING_LOG = "public/logs/live.log", "public/logs/live_backing.log"
RECLAIM_MARGIN = timedelta(minutes=3)
# extensions generic-worker uploads without gzip (`artifacts.go`), case-sensitive
_IDENTITY_EXTENSIONS = frozenset((
    ".7z", ".br", ".aab", ".apk", ".bz2", ".deb", ".dmg", ".flv", ".gif", ".gz", ".jar", ".jpeg",
    ".jpg", ".lz", ".lz4", ".mz", ".npz", ".pkg", ".png", ".swf", ".sz", ".tbz", ".tgz", ".wasm",
    ".webp", ".whl", ".woff", ".woff2", ".xpi", ".xz", ".zip", ".zst", ".zz"))
_ARCHIVES = {"tar.gz": "r:gz", "tar.bz2": "r:bz2", "tar.xz": "r:xz", "tar": "r:"}


@dataclass
class WorkerSettings:
    """The worker's own settings (generic-worker's config, as worker-runner fills it)."""

    root_url: str
    credentials: dict[str, str]
    task_queue_id: str
    worker_group: str
    worker_id: str
    tasks_dir: Path
    downloads_dir: Path
    platform: str = "linux"  # "windows": strings run through the cmd stand-in (README)
    max_task_run_time: int = 86400
    capacity: int = 1
    # what the machine image provides outside the task (its /etc/gitconfig, say), as variables
    machine_env: dict[str, str] = field(default_factory=dict)
    schemas: SchemaStore | None = None
    # generic-worker's cleanUpTaskDirs (default true): a task's directory goes once the task
    # is resolved (a task environment unpacked per task is 180 MB)
    clean_up_task_dirs: bool = True
    # not generic-worker's: where a copy of each task's backing log stays (a local run's
    # logs outlive its Taskcluster)
    logs_dir: Path | None = None
    # generic-worker's cachesDir: writable directory caches between tasks (caches.py)
    caches_dir: Path | None = None

    @property
    def options(self) -> dict[str, Any]:
        return {"rootUrl": self.root_url, "credentials": self.credentials}

    def new_caches(self) -> DirectoryCaches:
        """The worker's (empty) cache pools, under `caches_dir` or beside the tasks."""
        return DirectoryCaches(self.caches_dir or self.tasks_dir.parent / "caches")


class TaskError(Exception):
    """What ends a task: `state` failed or exception, with the exception's `reason`."""

    def __init__(self, message: str, state: str = "failed", reason: str = "failed"):
        super().__init__(message)
        self.state, self.reason = state, reason


def malformed(message: str) -> TaskError:
    return TaskError(message, "exception", "malformed-payload")


class TaskRun:
    """One claim of `claimWork`: run it with `run()`; `abort()` stops it (worker shutdown)."""

    def __init__(self, settings: WorkerSettings, claim: dict[str, Any],
                 log: Callable[[str], None] = lambda line: None,
                 caches: DirectoryCaches | None = None):
        self.settings, self.claim, self.worker_log = settings, claim, log
        # the worker's caches (a task run alone gets pools of its own)
        self.caches = caches or settings.new_caches()
        self._mounted_caches: list[tuple[CacheEntry, Path]] = []
        self.exit_status: int | None = None
        self.task: dict[str, Any] = claim["task"]
        self.task_id: str = claim["status"]["taskId"]
        self.run_id: int = claim["runId"]
        self.payload: dict[str, Any] = self.task.get("payload") or {}
        self.credentials: dict[str, Any] = claim["credentials"]
        self.taken_until = _parse(claim["takenUntil"])
        short = self.task_id[:20 - len("task__") - len(str(self.run_id))]
        self.task_dir = settings.tasks_dir / f"task_{short}_{self.run_id}"
        self.errors: list[TaskError] = []
        self.uploaded: list[str] = []
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._aborted: TaskError | None = None
        self._done = threading.Event()
        self.proxy: TaskclusterProxy | None = None
        self.resolution = ""
        self._cancelled = False

    # -- the task's queue client -------------------------------------------------------------

    def queue(self) -> taskcluster.Queue:
        with self._lock:
            credentials = dict(self.credentials)
        return taskcluster.Queue({"rootUrl": self.settings.root_url,
                                  "credentials": credentials, "maxRetries": 5})

    # -- logging -----------------------------------------------------------------------------

    def info(self, message: str) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self._write("".join(f"[taskcluster {stamp}] {line}\n" for line in message.splitlines()))

    def error(self, message: str) -> None:
        self._write("".join(f"[taskcluster:error] {line}\n" for line in message.splitlines()))

    def _write(self, text: str) -> None:
        with open(self.backing_log, "a", encoding="utf-8") as log:
            log.write(text)

    @property
    def backing_log(self) -> Path:
        return self.task_dir / "generic-worker" / "live_backing.log"

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> str:
        """Run the task to its resolution; returns the state reported."""
        if self.task_dir.exists():
            shutil.rmtree(self.task_dir)
        (self.task_dir / "generic-worker").mkdir(parents=True)
        self.info(f"Worker Type ({self.settings.task_queue_id}) settings:\n  {{}}\n"
                  f"Task ID: {self.task_id}\n=== Task Starting ===")
        reclaimer = threading.Thread(target=self._reclaim_loop, daemon=True, name="reclaim")
        reclaimer.start()
        started = time.monotonic()
        commands_ran = False
        try:
            self._validate()
            if self.payload.get("features", {}).get("taskclusterProxy"):
                self.proxy = TaskclusterProxy(self.settings.root_url, self.credentials,
                                              [*self.task.get("scopes", []),
                                               f"queue:create-artifact:{self.task_id}/"
                                               f"{self.run_id}"]).start()
            self._mount()
            commands_ran = True
            self._run_commands()
        except TaskError as problem:
            self._record(problem)
        finally:
            if commands_ran or not self.errors:
                self._upload_payload_artifacts()
            self._unmount_caches()
            self.info(f"=== Task Finished ===\nTask Duration: {time.monotonic() - started:.3f}s")
            if self.errors:
                self.error(str(self.errors[0]))
            if self.proxy is not None:
                self.proxy.stop()
            self._upload_logs()
            self._done.set()
            self.resolution = self._resolve()
        return self.resolution

    def _record(self, problem: TaskError) -> None:
        self.errors.append(problem)

    def abort(self, problem: TaskError) -> None:
        """Stop the commands (worker shutdown, reclaim refused, maxRunTime)."""
        with self._lock:
            if self._aborted is None:
                self._aborted = problem
            process = self._process
        if process is not None and process.poll() is None:
            _kill_group(process)

    # -- features ----------------------------------------------------------------------------

    def _validate(self) -> None:
        schemas = self.settings.schemas or SchemaStore.default(self.settings.root_url)
        schema = PAYLOAD_SCHEMAS[self.settings.platform]
        problems = schemas.errors(schema, self.payload)
        if problems:
            self.error("Task payload for this worker type must conform to the following "
                       f"jsonschema: {self.settings.root_url}{schema}\n"
                       "TASK FAIL since the task payload is invalid. See errors:\n"
                       + "\n".join(f"- {p}" for p in problems))
            raise malformed(f"validation of payload failed for task {self.task_id}")
        if self.payload["maxRunTime"] > self.settings.max_task_run_time:
            raise malformed(f"task's maxRunTime of {self.payload['maxRunTime']} exceeded allowed "
                            f"maximum of {self.settings.max_task_run_time}")
        deadline, expires = _parse(self.task["deadline"]), _parse(self.task["expires"])
        for artifact in self.payload.get("artifacts", []):
            if "expires" not in artifact:
                continue
            when = _parse(artifact["expires"])
            if when < deadline - timedelta(seconds=1):
                raise malformed(f"malformed payload: artifact '{artifact['path']}' expires "
                                f"before task deadline ({when} is before {deadline})")
            if when > expires + timedelta(seconds=1):
                raise malformed(f"malformed payload: artifact '{artifact['path']}' expires "
                                f"after task expiry ({when} is after {expires})")
        dependencies = set(self.task.get("dependencies", []))
        for mount in self.payload.get("mounts", []):
            content = mount.get("content") or {}
            if "taskId" in content and content["taskId"] not in dependencies:
                raise malformed(f"[mounts] task.dependencies needs to include "
                                f"{content['taskId']} since one or more of its artifacts are "
                                "mounted")
            if "cacheName" in mount:
                scope = f"generic-worker:cache:{mount['cacheName']}"
                if not _satisfies(self._expanded_scopes(), scope):
                    raise malformed(f'Feature "Mounts" requires scopes:\n\n{scope}\n\nbut task '
                                    f"only has scopes:\n\n{self.task.get('scopes', [])}")

    def _expanded_scopes(self) -> list[str]:
        """The task's scopes with the roles they assume expanded by the auth service, as
        generic-worker checks a feature's scopes (`scopes.Given.Satisfies` with an auth
        client); the scopes as written when none assumes a role."""
        scopes = list(self.task.get("scopes", []))
        if not any(s.startswith("assume:") for s in scopes):
            return scopes
        auth = taskcluster.Auth({**self.settings.options, "maxRetries": 5})
        try:
            return auth.expandScopes({"scopes": scopes})["scopes"]
        except taskcluster.TaskclusterFailure as problem:
            raise TaskError(f"could not expand the task's scopes: {problem}", "exception",
                            "internal-error") from None

    def _mount(self) -> None:
        for mount in self.payload.get("mounts", []):
            try:
                self._mount_one(mount)
            except (OSError, requests.RequestException, tarfile.TarError,
                    zipfile.BadZipFile, ValueError) as problem:
                raise TaskError(f"[mounts] {problem}") from None

    def _mount_one(self, mount: dict[str, Any]) -> None:
        content = mount.get("content")
        if "file" in mount:
            target = self.task_dir / mount["file"]
            target.parent.mkdir(parents=True, exist_ok=True)
            source = self._content(content)
            if mount.get("format") == "gz":
                with gzip.open(source, "rb") as data, open(target, "wb") as out:
                    shutil.copyfileobj(data, out)
            else:
                shutil.copyfile(source, target)
            return
        target = self.task_dir / mount["directory"]
        if "cacheName" in mount:
            self._mount_cache(mount["cacheName"], content, mount.get("format", ""), target)
            return
        target.mkdir(parents=True, exist_ok=True)
        _unpack(self._content(content), mount.get("format", ""), target)
        self.info(f"[mounts] Mounted {mount.get('format')} content into {mount['directory']}")

    def _mount_cache(self, name: str, content: dict[str, Any] | None, format: str,
                     target: Path) -> None:
        """A writable directory cache: a free entry of the worker's pool moved in, or a new
        one, preloaded with `content` only when it is created."""
        entry = self.caches.acquire(name)
        if entry is not None:
            self.info(f"[mounts] Moving existing writable directory cache {name} from "
                      f"{entry.location} to {target}")
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                entry.location.rename(target)
            except OSError:
                self.caches.evict(entry)
                raise
        else:
            entry = self.caches.create(name)
            self.info(f"[mounts] No existing writable directory cache '{name}' - creating "
                      f"{entry.location}")
            try:
                target.mkdir(parents=True, exist_ok=True)
                if content is not None:
                    _unpack(self._content(content), format, target)
            except BaseException:
                self.caches.evict(entry, target)
                raise
        self._mounted_caches.append((entry, target))
        self.info(f"[mounts] Successfully mounted writable directory cache '{target}'")

    def _unmount_caches(self) -> None:
        """Caches go back to the worker's pools, or are evicted when the task was aborted or
        its last exit status is one of `onExitStatus.purgeCaches` (`shouldPurgeCaches`)."""
        purge_on = self.payload.get("onExitStatus", {}).get("purgeCaches", [])
        with self._lock:
            aborted = self._aborted is not None
        purge = aborted or (self.exit_status is not None and self.exit_status in purge_on)
        if aborted:
            self.info("[mounts] Purging caches since the task was aborted and may have left "
                      "them in an inconsistent state")
        elif purge:
            self.info(f"[mounts] Purging caches since last command had exit code "
                      f"{self.exit_status} which is listed in task.Payload.OnExitStatus."
                      "PurgeCaches array")
        for entry, directory in reversed(self._mounted_caches):
            if purge:
                self.caches.evict(entry, directory)
                continue
            self.info(f'[mounts] Preserving cache: Moving "{directory}" to "{entry.location}"')
            try:
                self.caches.release(entry, directory)
            except OSError as problem:
                self._record(TaskError(f"could not persist cache {entry.name!r} due to "
                                       f"{problem}"))
        self._mounted_caches = []

    def _content(self, content: dict[str, Any]) -> Path:
        """Download (once per worker: the downloads directory) what a mount names."""
        downloads = self.settings.downloads_dir
        downloads.mkdir(parents=True, exist_ok=True)
        if "taskId" in content:
            key = f"artifact:{content['taskId']}:{content['artifact']}"
            url = self.queue().buildSignedUrl("getLatestArtifact", content["taskId"],
                                              content["artifact"])
        elif "url" in content:
            key, url = f"urlcontent:{content['url']}", content["url"]
        elif "raw" in content or "base64" in content:
            # generic-worker writes base64 content as it is (Base64Content.Download)
            path = downloads / f"inline-{abs(hash(json.dumps(content, sort_keys=True)))}"
            path.write_text(content.get("raw", content.get("base64", "")))
            return path
        else:
            raise ValueError(f"unsupported mount content {sorted(content)}")
        path = downloads / re.sub(r"[^A-Za-z0-9._-]", "_", key)
        if not path.exists():
            with requests.get(url, stream=True, timeout=300) as response:
                if response.status_code != 200:
                    raise ValueError(f"could not download {key}: HTTP "
                                     f"{response.status_code}")
                # unique: workers sharing a downloads directory may fetch the same content
                partial = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}"
                                         ".part")
                with open(partial, "wb") as out:
                    for chunk in response.iter_content(1 << 20):
                        out.write(chunk)
                partial.replace(path)
            self.info(f"[mounts] Downloaded {key}")
        if content.get("sha256"):
            import hashlib

            actual = hashlib.sha256(path.read_bytes()).hexdigest()
            if actual != content["sha256"]:
                path.unlink()
                raise ValueError(f"Download {path} of {key} has SHA256 {actual} but task "
                                 f"definition explicitly requires {content['sha256']}")
        return path

    # -- commands ----------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        """generic-worker multiuser's environment: HOME, USER, PATH, the payload's `env`,
        then what the worker sets whatever the payload says."""
        user = self.task_dir.name
        env = {"HOME": str(self.task_dir), "USER": user, "PATH": DEFAULT_PATH,
               **self.settings.machine_env, **self.payload.get("env", {})}
        env.update(TASK_ID=self.task_id, RUN_ID=str(self.run_id),
                   TASK_WORKDIR=str(self.task_dir), TASK_GROUP_ID=self.task["taskGroupId"],
                   TASKCLUSTER_ROOT_URL=self.settings.root_url)
        if self.proxy is not None:
            env["TASKCLUSTER_PROXY_URL"] = self.proxy.url
        return env

    def _run_commands(self) -> None:
        env = self.environment()
        max_run_time = self.payload["maxRunTime"]
        timer = threading.Timer(max_run_time, self.abort, [TaskError(
            "task aborted - max run time exceeded")])
        timer.daemon = True
        timer.start()
        try:
            for index, command in enumerate(self.payload["command"]):
                argv = self._argv(command, env)
                self.info(f"Executing command {index}: {_quote(argv)}")
                started = time.monotonic()
                status, usage = self._execute(argv, env)
                wall = time.monotonic() - started
                self.exit_status = status
                with self._lock:
                    aborted = self._aborted
                if aborted is not None:
                    self.error(f"Command ABORTED: {aborted}")
                    raise aborted
                # generic-worker's account of a command (process.Result.String)
                self.info(f"   Exit Code: {status}\n   User Time: {go_duration(usage[0])}\n"
                          f" Kernel Time: {go_duration(usage[1])}\n"
                          f"   Wall Time: {go_duration(wall)}\n"
                          f"      Result: {'SUCCEEDED' if status == 0 else 'FAILED'}")
                if status != 0:
                    if status in self.payload.get("onExitStatus", {}).get("retry", []):
                        raise TaskError(f"task appears to have failed intermittently - exit "
                                        f"code {status} found in task payload.onExitStatus "
                                        "list", "exception", "intermittent-task")
                    raise TaskError(f"exit status {status}")
        finally:
            timer.cancel()

    def _argv(self, command: Any, env: dict[str, str]) -> list[str]:
        if self.settings.platform == "windows":
            # The cmd.exe stand-in: %NAME% expanded from the environment, then run by sh.
            line = re.sub(r"%([A-Za-z_][A-Za-z0-9_]*)%",
                          lambda m: env.get(m.group(1), m.group(0)), str(command))
            return ["/bin/sh", "-c", line]
        return list(command)

    def _execute(self, argv: list[str], env: dict[str, str]
                 ) -> tuple[int, tuple[float, float]]:
        """Run one command: its exit status, and the user and kernel CPU seconds of its
        process and the descendants it waited for (`wait4`, as Go's ProcessState)."""
        with open(self.backing_log, "ab") as log:
            try:
                # argv[0] without a slash is looked up on the worker's PATH, as Go's exec does
                process = subprocess.Popen(argv, cwd=self.task_dir, env=env, stdout=log,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           start_new_session=True)
            except OSError as problem:
                raise TaskError(f"System error executing command: {problem}") from None
            with self._lock:
                self._process = process
                aborted = self._aborted
            if aborted is not None:
                _kill_group(process)
            _, wait_status, usage = os.wait4(process.pid, 0)
            process.returncode = status = os.waitstatus_to_exitcode(wait_status)
            with self._lock:
                self._process = None
        return status, (usage.ru_utime, usage.ru_stime)

    # -- reclaim -----------------------------------------------------------------------------

    def _reclaim_loop(self) -> None:
        while True:
            wait = (self.taken_until - RECLAIM_MARGIN - datetime.now(UTC)).total_seconds()
            if wait < 30:
                return  # generic-worker sets no reclaim timer this close to the claim's end
            if self._done.wait(max(wait, 0)):
                return
            try:
                reply = self.queue().reclaimTask(self.task_id, str(self.run_id))
            except taskcluster.TaskclusterFailure as problem:
                self.worker_log(f"{self.task_id}: reclaim refused ({problem}); killing it")
                self._cancelled = True
                self.abort(TaskError("reclaim refused", "exception", "canceled"))
                return
            with self._lock:
                self.credentials = reply["credentials"]
            self.taken_until = _parse(reply["takenUntil"])
            if self.proxy is not None:
                self.proxy.update(reply["credentials"])
                self.info("[taskcluster-proxy] Successfully refreshed taskcluster-proxy "
                          f"credentials: {reply['credentials']['clientId']}")

    # -- artifacts ---------------------------------------------------------------------------

    def _upload_payload_artifacts(self) -> None:
        reserved = {LIVE_LOG, BACKING_LOG}
        for artifact in self.payload.get("artifacts", []):
            name = artifact.get("name") or artifact["path"]
            if name in reserved:
                self.info(f"Not uploading artifact {name} found in task.payload.artifacts "
                          "section, since this will be uploaded later by the logs")
                continue
            for item in self._resolve_artifact(artifact, name):
                try:
                    self._upload(item)
                except TaskError as problem:
                    self._record(problem)

    def _resolve_artifact(self, artifact: dict[str, Any], name: str) -> list[dict[str, Any]]:
        path = Path(artifact["path"])
        full = path if path.is_absolute() else self.task_dir / path
        expires = artifact.get("expires") or self.task["expires"]
        optional = artifact.get("optional", False)

        def problem(reason: str, message: str) -> dict[str, Any]:
            return {"name": name, "error": (reason, message), "expires": expires,
                    "optional": optional, "path": str(full)}

        if artifact["type"] == "file":
            if full.is_dir():
                return [problem("invalid-resource-on-worker", f"File artifact '{full}' exists "
                                "as a directory, not a file, on the worker")]
            if not full.is_file():
                return [problem("file-missing-on-worker", f"Could not read file '{full}'")]
            return [self._file_item(artifact, name, full, expires)]
        if not full.exists():
            return [problem("file-missing-on-worker", f"Could not read directory '{full}'")]
        if not full.is_dir():
            return [problem("invalid-resource-on-worker", f"Directory artifact '{full}' exists "
                            "as a file, not a directory, on the worker")]
        if full.is_symlink():  # WalkDir Lstat's the root: a single file that is a directory
            return [problem("invalid-resource-on-worker", f"File artifact '{full}' exists as a "
                            "directory, not a file, on the worker")]
        items = []
        for entry in sorted(full.rglob("*")):
            if entry.is_dir() and not entry.is_symlink():
                continue
            entry_name = f"{name}/{entry.relative_to(full).as_posix()}"
            if entry.is_symlink() and entry.is_dir():
                items.append({**problem("invalid-resource-on-worker", f"File artifact "
                              f"'{entry}' exists as a directory, not a file, on the worker"),
                              "name": entry_name})
            elif not entry.exists():
                items.append({**problem("file-missing-on-worker",
                                        f"Could not read file '{entry}'"), "name": entry_name})
            else:
                items.append(self._file_item(artifact, entry_name, entry, expires))
        return items

    def _file_item(self, artifact: dict[str, Any], name: str, path: Path, expires: str
                   ) -> dict[str, Any]:
        content_type = artifact.get("contentType") or _content_type(path)
        encoding = artifact.get("contentEncoding") or (
            "identity" if path.suffix in _IDENTITY_EXTENSIONS else "gzip")
        return {"name": name, "path": str(path), "expires": expires,
                "contentType": content_type, "contentEncoding": encoding,
                "optional": artifact.get("optional", False)}

    def _upload(self, item: dict[str, Any]) -> None:
        queue, name = self.queue(), item["name"]
        if "error" in item:
            reason, message = item["error"]
            self._create(queue, name, {"storageType": "error", "expires": item["expires"],
                                       "reason": reason, "message": message})
            if not item["optional"]:
                self.error(f'Uploading error artifact {name} from file {item["path"]} with '
                           f'message "{message}", reason "{reason}" and expiry '
                           f'{item["expires"]}\nTASK FAILURE during artifact upload: '
                           f"{reason}: {message}")
                raise TaskError(f"{reason}: {message}")
            return
        data = Path(item["path"]).read_bytes()
        reply = self._create(queue, name, {"storageType": "s3",
                                           "contentType": item["contentType"],
                                           "expires": item["expires"],
                                           **({"contentLength": len(data)} if data else {})})
        body = gzip.compress(data) if item["contentEncoding"] == "gzip" else data
        try:
            response = requests.put(reply["putUrl"], data=body, timeout=300, headers={
                "Content-Type": reply["contentType"],
                "Content-Encoding": item["contentEncoding"]})
            response.raise_for_status()
        except requests.RequestException as problem:
            raise TaskError(f"could not upload {name}: {problem}", "exception",
                            "resource-unavailable") from None
        self.uploaded.append(name)

    def _create(self, queue: taskcluster.Queue, name: str, body: dict[str, Any]
                ) -> dict[str, Any]:
        try:
            return queue.createArtifact(self.task_id, str(self.run_id), name, body)
        except taskcluster.TaskclusterRestFailure as problem:
            if problem.status_code == 409:
                raise malformed(f"there was a conflict uploading artifact {name}: "
                                f"{problem}") from None
            raise TaskError(f"could not create artifact {name}: {problem}", "exception",
                            "resource-unavailable") from None

    def _upload_logs(self) -> None:
        queue = self.queue()
        item = {"name": BACKING_LOG, "path": str(self.backing_log),
                "expires": self.task["expires"], "contentType": "text/plain; charset=utf-8",
                "contentEncoding": "gzip", "optional": False}
        try:
            self._upload(item)
            if not any(e.reason == "malformed-payload" for e in self.errors[:1]):
                self._create(queue, LIVE_LOG, {"storageType": "link",
                                               "contentType": "text/plain; charset=utf-8",
                                               "expires": self.task["expires"],
                                               "artifact": BACKING_LOG})
        except TaskError as problem:
            self._record(problem)

    # -- resolution --------------------------------------------------------------------------

    def _resolve(self) -> str:
        if self._cancelled:
            return "canceled"  # a refused reclaim: generic-worker reports nothing
        queue = self.queue()
        try:
            if not self.errors:
                queue.reportCompleted(self.task_id, str(self.run_id))
                return "completed"
            first = self.errors[0]
            if first.state == "failed":
                queue.reportFailed(self.task_id, str(self.run_id))
                return "failed"
            queue.reportException(self.task_id, str(self.run_id), {"reason": first.reason})
            return "exception"
        except taskcluster.TaskclusterFailure as problem:
            self.worker_log(f"{self.task_id}: could not resolve: {problem}")
            return "unresolved"


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _satisfies(scopes: list[str], scope: str) -> bool:
    return any(s == scope or (s.endswith("*") and scope.startswith(s[:-1])) for s in scopes)


def _quote(argv: list[str]) -> str:
    import shlex

    return shlex.join(argv)


def go_duration(seconds: float) -> str:
    """`seconds` as Go prints a `time.Duration` (`1.5s`, `312.5ms`, `2m3.5s`), as
    generic-worker's logs show user, kernel and wall time."""
    if seconds < 0.001:
        return f"{round(seconds * 1e6)}µs" if seconds else "0s"
    if seconds < 1:
        return f"{seconds * 1e3:.3f}".rstrip("0").rstrip(".") + "ms"
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    if minutes or hours:
        text = f"{minutes}m{text}"
    return f"{hours}h{text}" if hours else text


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _content_type(path: Path) -> str:
    if path.suffix.lower() in (".log",):
        return "text/plain"
    if path.suffix.lower() == ".jsonl":
        return "application/jsonl"
    guessed = mimetypes.guess_type(path.name, strict=False)[0]
    if guessed and guessed.startswith("text/"):
        return f"{guessed}; charset=utf-8"
    return guessed or "application/octet-stream"


def _unpack(archive: Path, format: str, target: Path) -> None:
    if format == "zip":
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(target)
        return
    if format not in _ARCHIVES:
        raise ValueError(f"cannot unarchive {archive.name}: unsupported format {format!r}")
    tar_program = shutil.which("tar")
    if tar_program is not None:
        # GNU tar in its own process, as generic-worker's Go extraction runs outside any
        # interpreter: tarfile in this process holds the GIL every other worker needs (a
        # 50 MB environment took 5 to 15 s with four workers). GNU tar strips leading `/`
        # and refuses `..` members itself.
        flags = {"tar.gz": "-z", "tar.bz2": "-j", "tar.xz": "-J", "tar": ""}[format]
        done = subprocess.run([tar_program, "-x", *([flags] if flags else []),
                               "--no-same-owner", "-f", str(archive), "-C", str(target)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ValueError(f"cannot unarchive {archive.name}: {done.stderr.strip()}")
        return
    with tarfile.open(archive, _ARCHIVES[format]) as tar:
        tar.extractall(target, filter="data")  # zip-slip and link escapes refused
