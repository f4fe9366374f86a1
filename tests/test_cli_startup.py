"""What every `cib` command pays before it runs: the cloud SDKs are imported by the commands
that call clouds, never by the `cib` entry point and its argument parser."""

from __future__ import annotations

import json
import subprocess
import sys

CLOUD_SDKS = ("boto3", "botocore", "azure.core", "azure.identity", "azure.mgmt.compute",
              "azure.mgmt.network", "azure.storage.blob", "gnupg", "moto")


def test_the_cib_parser_imports_no_cloud_sdk():
    probe = ("import json, sys; from cib_decision import cli; cli.build_parser(); "
             f"print(json.dumps([m for m in {CLOUD_SDKS!r} if m in sys.modules]))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)
    assert json.loads(result.stdout) == []
