"""Cloud credentials for the commands that call clouds (`cib image`, `cib purge`, `cib gc`,
`cib promote`), from the level's Taskcluster secret `project/cib/level-<level>/clouds`.

Inside a task (`TASK_ID` set, and taskcluster-proxy or Taskcluster credentials to read with)
whose environment holds no cloud credentials at all, the secret is read once and its values
are exported as the variables boto3, azure-identity and `clouds.google` read, for the rest of
the process. The secret is a flat JSON object; every field is optional, but a cloud's fields
come together:

    {"aws_access_key_id": "AKIA...", "aws_secret_access_key": "...",
     "aws_session_token": "..." (temporary credentials only),
     "aws_endpoint_url": "http://127.0.0.1:5000" (another AWS endpoint, e.g. the local
         pipeline's moto server: boto3 sends every service's requests there),
     "azure_tenant_id": "...", "azure_client_id": "...", "azure_client_secret": "...",
     "azure_subscription_id": "...",
     (where Azure is, when not the public cloud: a sovereign cloud, Azure Stack, or the local
      pipeline's `devclouds.azure_server`; see `clouds.azure.Endpoints`)
     "azure_authority_host": "https://login.microsoftonline.us" (Entra ID),
     "azure_resource_manager": "https://management.usgovcloudapi.net",
     "azure_storage_suffix": "core.usgovcloudapi.net" (blob endpoints
         https://<account>.blob.<suffix>),
     "azure_blob_endpoint": "https://127.0.0.1:8443/{account}" (any account's blob
         endpoint, a template; path-style for an emulator; wins over the suffix),
     "azure_ca_bundle": "/path/ca.pem" (a CA file the Azure clients trust instead of the
         system's: an emulator's own CA),
     "google_service_account_key": "{\"type\": \"service_account\", ...}" (a service
         account's JSON key file, as a string),
     (where Google is, when not Google's public endpoints: the local pipeline's
      `devclouds.google_server`; see `clouds.google.Endpoints`)
     "google_compute_endpoint": "http://127.0.0.1:8088" (the Compute API root),
     "google_storage_endpoint": "http://127.0.0.1:8088" (the Cloud Storage API root)}

Each field becomes the variable of its name in capitals (`AWS_ACCESS_KEY_ID`, ...). Other
fields are left alone. Outside a task, or with credentials already in the environment (a
developer's profile, a test's moto), nothing is read. A task without the secret (404) keeps
the worker's own credentials (an instance profile, a managed identity) and says so; a task
lacking the secret's scope is an error (exit 2), a service error transient (exit 75).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from .errors import CibError
from .secrets import MissingSecret, read_secret, task_level

SECRET = "project/cib/level-{level}/clouds"
# A cloud's fields: all of `required` or none; `optional` only with them.
CLOUDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "AWS": (("aws_access_key_id", "aws_secret_access_key"),
            ("aws_session_token", "aws_endpoint_url")),
    "Azure": (("azure_tenant_id", "azure_client_id", "azure_client_secret",
               "azure_subscription_id"),
              ("azure_authority_host", "azure_resource_manager", "azure_storage_suffix",
               "azure_blob_endpoint", "azure_ca_bundle")),
    "Google": (("google_service_account_key",),
               ("google_compute_endpoint", "google_storage_endpoint")),
}
# Any of these in the environment means the process has cloud credentials already.
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                        "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE",
                        "GOOGLE_SERVICE_ACCOUNT_KEY", "GOOGLE_APPLICATION_CREDENTIALS")


def secret_name(environ: Mapping[str, str]) -> str:
    """The clouds secret of the task's level."""
    return SECRET.replace("{level}", task_level(environ))


def variables(secret: Mapping[str, Any], name: str) -> dict[str, str]:
    """The environment variables the clouds secret `name` gives (pure); CibError naming the
    fields when a cloud's are incomplete or not strings."""
    result: dict[str, str] = {}
    problems: list[str] = []
    for cloud, (required, optional) in CLOUDS.items():
        present = [f for f in (*required, *optional) if f in secret]
        if not present:
            continue
        missing = [f for f in required if f not in secret]
        if missing:
            problems.append(f"{cloud}: {', '.join(present)} without {', '.join(missing)}")
        for field in present:
            value = secret[field]
            if not isinstance(value, str) or not value:
                problems.append(f"{field}: must be a non-empty string")
            else:
                result[field.upper()] = value
    if problems:
        raise CibError("\n".join([f"secret {name} is malformed:",
                                  *(f"  {p}" for p in problems)]))
    return result


def in_task(environ: Mapping[str, str]) -> bool:
    """True inside a task that can read secrets: `TASK_ID`, and taskcluster-proxy or a root
    URL with credentials."""
    return bool(environ.get("TASK_ID")) and bool(
        environ.get("TASKCLUSTER_PROXY_URL")
        or (environ.get("TASKCLUSTER_ROOT_URL") and environ.get("TASKCLUSTER_CLIENT_ID")))


def has_credentials(environ: Mapping[str, str]) -> bool:
    """True when the environment holds cloud credentials of its own."""
    return any(environ.get(name) for name in CREDENTIAL_VARIABLES)


def ensure(environ: MutableMapping[str, str] | None = None,
           read: Callable[[str], Mapping[str, Any]] = read_secret,
           say: Callable[[str], None] | None = None) -> list[str]:
    """In a task without cloud credentials, export those of the level's clouds secret into
    `environ` (default: this process's environment). The names of the variables set."""
    environ = os.environ if environ is None else environ
    say = say or _stderr
    if not in_task(environ) or has_credentials(environ):
        return []
    name = secret_name(environ)
    try:
        secret = read(name)
    except MissingSecret:
        say(f"no secret {name}: using the worker's own cloud credentials")
        return []
    found = variables(secret, name)
    environ.update(found)
    clouds = [c for c, (required, _) in CLOUDS.items() if required[0].upper() in found]
    say(f"cloud credentials from secret {name}: {', '.join(clouds) or 'none'}")
    return sorted(found)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
