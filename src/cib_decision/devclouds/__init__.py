"""Local stand-ins for the clouds (test and demo fixtures of the local pipeline, `cib dev-up`):
fakes that the real SDKs talk to unchanged. Production code never imports this package."""
