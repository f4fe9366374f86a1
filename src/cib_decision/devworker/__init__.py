"""A local worker that runs tasks the way generic-worker (Linux, multiuser engine without OS
users) does: it claims work from the queue, gives each task a fresh task directory, mounts,
a clean environment, taskcluster-proxy, `maxRunTime`, `onExitStatus`, artifact uploads and the
task log, and resolves the run only after everything was uploaded (docs/dev-worker.md).

A test and demo fixture of the local pipeline, like `devtc`: production code never imports it.
"""
