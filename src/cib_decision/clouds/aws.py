"""A thin adapter over boto3: S3 objects, EC2 images, instances and their resources.

Every call goes through `aws_errors`, which turns botocore's exceptions into cib's: transient
ones (quota, capacity, throttling, service errors, lost connections) into `TransientError`
(exit 75, retried by the task), the rest into `BuildError` (exit 3) with AWS's own message.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from ..errors import BuildError, CibError, TransientError

# Error codes a later attempt may not meet: quotas and capacity free up, throttling passes.
TRANSIENT_CODES = frozenset({
    "InstanceLimitExceeded", "VcpuLimitExceeded", "ResourceLimitExceeded",
    "MaxSpotInstanceCountExceeded", "VolumeLimitExceeded", "SnapshotLimitExceeded",
    "AddressLimitExceeded", "ResourceCountExceeded", "AMIQuotaExceeded",
    "ImportSnapshotLimitExceeded",
    "InsufficientInstanceCapacity", "InsufficientCapacity", "InsufficientHostCapacity",
    "RequestLimitExceeded", "Throttling", "ThrottlingException", "SlowDown",
    "InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable", "RequestTimeout",
})


def error_code(exc: ClientError) -> str:
    """The AWS error code of a ClientError (`InstanceLimitExceeded`, ...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def aws_errors(doing: str) -> Iterator[None]:
    """Translate botocore exceptions raised while `doing` into cib's errors."""
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message", str(exc))
        error = TransientError if code in TRANSIENT_CODES else BuildError
        raise error(f"AWS refused {doing}: {code}: {message}") from None
    except (NoCredentialsError, NoRegionError) as exc:
        raise CibError(f"cannot {doing}: {exc}") from None
    except BotoConnectionError as exc:
        raise TransientError(f"lost the connection to AWS while {doing}: {exc}") from None
    except BotoCoreError as exc:
        raise BuildError(f"AWS failed while {doing}: {exc}") from None


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class S3:
    """The S3 objects of image builds."""

    def __init__(self, session: boto3.session.Session | None = None):
        self.session = session or boto3.session.Session()
        self.client = self.session.client("s3")

    def download(self, bucket: str, key: str, destination: Path) -> None:
        """Download `s3://bucket/key` to `destination`."""
        with aws_errors(f"downloading s3://{bucket}/{key}"):
            self.client.download_file(bucket, key, str(destination))

    def bucket_region(self, bucket: str) -> str:
        """The region `bucket` lives in (S3 says None for us-east-1)."""
        with aws_errors(f"locating bucket {bucket}"):
            answer = self.client.get_bucket_location(Bucket=bucket)
        return answer.get("LocationConstraint") or "us-east-1"

    def head(self, bucket: str, key: str) -> dict[str, Any] | None:
        """The object's metadata, or None when there is no such object."""
        try:
            return self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
                with aws_errors(f"reading s3://{bucket}/{key}"):
                    raise
        return None

    def upload(self, source: Path, bucket: str, key: str, metadata: dict[str, str]) -> None:
        """Upload `source` to `s3://bucket/key` with `metadata` (multipart when large)."""
        with aws_errors(f"uploading s3://{bucket}/{key}"):
            self.client.upload_file(str(source), bucket, key,
                                    ExtraArgs={"Metadata": metadata})
