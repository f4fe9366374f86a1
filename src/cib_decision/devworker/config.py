"""generic-worker's configuration rules: the keys it knows (an unknown one stops it, exit 64),
the keys it needs (exit 73), and how worker-runner takes a pool's `workerConfig`
(`workers/generic-worker/gwconfig`, `tools/worker-runner/cfg/providerworkerconfig.go`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

KNOWN_KEYS = frozenset(k.lower() for k in (
    "accessToken", "allowedHighMemoryDurationSecs", "availabilityZone", "cachesDir", "capacity",
    "certificate", "cleanUpTaskDirs", "clientId", "createObjectArtifacts", "d2gConfig",
    "disableNativePayloads", "disableOOMProtection", "disableReboots", "downloadsDir",
    "ed25519SigningKeyLocation", "enableChainOfTrust", "enableInteractive", "enableLiveLog",
    "enableLoopbackAudio", "enableLoopbackVideo", "enableMetadata", "enableMounts",
    "enableOSGroups", "enableRDP", "enableResourceMonitor", "enableRunAsAdministrator",
    "enableRunTaskAsCurrentUser", "enableTaskclusterProxy", "headlessTasks", "idleTimeoutSecs",
    "instanceId", "instanceType", "interactivePort", "livelogExecutable", "livelogExposePort",
    "livelogPortBase", "loopbackAudioDeviceNumber", "loopbackVideoDeviceNumber",
    "maxMemoryUsagePercent", "maxTaskRunTime", "minAvailableMemoryBytes", "numberOfTasksToRun",
    "privateIP", "provisionerId", "publicIP", "region", "requiredDiskSpaceMegabytes", "rootURL",
    "runAfterUserCreation", "sentryProject", "shutdownMachineOnIdle",
    "shutdownMachineOnInternalError", "taskclusterProxyExecutable", "taskclusterProxyPort",
    "tasksDir", "workerGroup", "workerId", "workerLocation", "workerType", "workerTypeMetadata",
    "wstAudience", "wstServerURL"))
# non-empty or generic-worker exits 73 (`Config.Validate`)
REQUIRED_KEYS = ("accessToken", "clientId", "ed25519SigningKeyLocation", "rootURL", "workerId",
                 "workerType")
# what worker-runner sets itself from the provider and registerWorker (`ConfigureRun`)
RUNNER_KEYS = ("rootURL", "clientId", "accessToken", "certificate", "provisionerId",
               "workerType", "workerGroup", "workerId", "publicIP", "privateIP", "instanceType",
               "instanceId", "region", "availabilityZone", "workerLocation")


def from_worker_pool(worker_config: Mapping[str, Any]) -> dict[str, Any]:
    """The generic-worker config worker-runner derives from a launch config's `workerConfig`:
    `genericWorker.config` when `genericWorker` is its only key, else the whole object (the
    legacy flat form)."""
    if set(worker_config) == {"genericWorker"}:
        return dict((worker_config["genericWorker"] or {}).get("config") or {})
    return dict(worker_config)


def problems(config: Mapping[str, Any], *, runner_supplied: bool = False) -> list[str]:
    """Why generic-worker would refuse to start with `config` (empty when it starts). With
    `runner_supplied`, the keys worker-runner fills in count as present."""
    found = [f"unknown config key {key!r} (generic-worker exits 64)"
             for key in config if key.lower() not in KNOWN_KEYS]
    present = {k.lower() for k, v in config.items() if v not in (None, "")}
    if runner_supplied:
        present |= {k.lower() for k in RUNNER_KEYS}
    found += [f"config setting {key!r} has not been defined (generic-worker exits 73)"
              for key in REQUIRED_KEYS if key.lower() not in present]
    return found
