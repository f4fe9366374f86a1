"""Worker pool definitions: render them from the config and the images built, and deploy them
to worker-manager as a diff (orchestration).

A definition is what `createWorkerPool` takes: `providerId`, `description`, `config`
(`minCapacity`, `maxCapacity`, `lifecycle`, `launchConfigs`), `owner`, `emailOnError`. It has
one launch config per pool location that has an image, shaped for the provider type the pool's
platform maps to (`azure` -> azure, `amazon` -> aws, `google` -> google). `docs/pools.md`
describes each field, the defaults and the rules below.

Rules:
- a location's image is the new one from this build (release or machine-image records),
  else the image its launch config runs in the current definition (a failed or skipped build
  keeps the previous image; a `pool-deploy`, which is given no images, keeps every image the
  pool runs), else the location gets no launch config;
- a pool is never written without a launch config;
- launch config ids are derived from content, so a changed launch config gets a new id and
  worker-manager archives the old one;
- per-PR pools (`naming.pr_pool_id`) record their expiry as a `cib-expires: <time>` line of
  the description, are capped in capacity and never email; they are deployed only in
  environments that take pull requests.

`apply` reads the current pool, writes only when something differs (ignoring fields the server
sets), creates on 404 and updates on a create that answers 409, so a rerun of an interrupted
apply converges. `teardown` and `sweep` delete per-PR pools, and only those.

The modules: `definition` (the request, the rendered definition, the image a location runs,
reading worker-manager's shape back), `rendering` (launch configs per provider, the
definition, schema validation), `records` (the release and machine-image records a deploy is
given), `deploy` (worker-manager: read, diff, write, apply) and `pr` (per-PR pools' teardown
and sweep). Everything is exported here: `from cib_decision import pools; pools.render(...)`.
"""

from .definition import (
    DEFINITION_FIELDS,
    EXPIRES_LINE,
    NULL_PROVIDER,
    PROVIDER_TYPES,
    Definition,
    Log,
    Outcome,
    PoolError,
    PoolImage,
    PoolRequest,
    comparable,
    current_images,
    current_launch_configs,
    expiry,
    find_pool,
    image_for,
    image_of,
    pool_target,
    provider_type,
)
from .deploy import apply, changes, failed_build_regions, list_pools, read_pool, write
from .pr import sweep, teardown
from .records import (
    Record,
    UntestedImages,
    collect_images,
    dependency_record_sources,
    dependency_records,
    dependency_states,
    dependency_tasks,
    parse_record,
    tested_records,
)
from .rendering import (
    GENERIC_WORKER_FILES,
    IDLE_TIMEOUT_SECS,
    PR_MAX_CAPACITY,
    QUEUE_INACTIVITY_TIMEOUT,
    RENDERERS,
    description,
    launch_config_id,
    render,
    validate,
    worker_config,
)

__all__ = [
    "DEFINITION_FIELDS", "EXPIRES_LINE", "GENERIC_WORKER_FILES", "IDLE_TIMEOUT_SECS",
    "NULL_PROVIDER", "PROVIDER_TYPES", "PR_MAX_CAPACITY", "QUEUE_INACTIVITY_TIMEOUT",
    "RENDERERS", "Definition", "Log", "Outcome", "PoolError", "PoolImage", "PoolRequest",
    "Record", "UntestedImages", "apply", "changes", "collect_images", "comparable",
    "current_images", "current_launch_configs", "dependency_record_sources",
    "dependency_records", "dependency_states", "dependency_tasks", "description", "expiry",
    "failed_build_regions", "find_pool", "image_for", "image_of", "launch_config_id",
    "list_pools", "parse_record", "pool_target", "provider_type", "read_pool",
    "render", "sweep", "teardown", "tested_records", "validate", "worker_config", "write",
]
