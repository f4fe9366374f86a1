"""`cib image disk`: fetch (S3 or https), verify, convert (qemu-img for real; an ISO with the
worker's conversion command), upload to S3 (moto) and record."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import responses
from moto import mock_aws

from cib_decision import manifest
from cib_decision.cli import main
from cib_decision.errors import CibError
from cib_decision.images.disk import conversion_command, qemu_convert_command

from .aws_build_support import image_task_env
from .imagefleet import COMMIT, SOURCE_URL, TASK_ID, write_fleet

needs_qemu = pytest.mark.skipif(shutil.which("qemu-img") is None,
                                reason="qemu-img is not installed (Debian: qemu-utils; "
                                       ".ci/run installs it)")


@pytest.fixture
def aws(monkeypatch):
    image_task_env(monkeypatch)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="disk-images")
        s3.create_bucket(Bucket="media")
        yield s3


@pytest.fixture
def qcow2(tmp_path) -> bytes:
    """A real, tiny qcow2 image (1 MiB virtual) with known bytes written into it."""
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is not installed (Debian: qemu-utils; .ci/run installs it)")
    raw = tmp_path / "seed.raw"
    raw.write_bytes(b"cib-test-disk\n" + bytes(range(256)) * 16 + b"\0" * (1 << 20))
    image = tmp_path / "seed.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(image)],
                   check=True)
    return image.read_bytes()


def run_disk(tmp_path, config, *extra) -> tuple[int, dict | None]:
    artifacts = tmp_path / "artifacts"
    status = main(["image", "disk", "--key", extra[0] if extra else "linux-test",
                   "--config-dir", str(config), "--artifacts", str(artifacts),
                   "--work-dir", str(tmp_path), *extra[1:]])
    path = artifacts / "disk-image.json"
    return status, json.loads(path.read_text()) if path.exists() else None


@needs_qemu
def test_a_source_image_is_converted_with_qemu_img_and_its_record_matches_the_upload(
        tmp_path, aws, qcow2, capsys):
    config = write_fleet(tmp_path, source_sha256=hashlib.sha256(qcow2).hexdigest())
    with responses.RequestsMock() as http:
        http.get(SOURCE_URL, body=qcow2)
        status, record = run_disk(tmp_path, config)
    assert status == 0
    bucket, _, key = record["location"].removeprefix("s3://").partition("/")
    uploaded = aws.get_object(Bucket=bucket, Key=key)["Body"].read()
    # qemu-img really converted: the raw result starts with the bytes written into the qcow2
    assert uploaded.startswith(b"cib-test-disk\n")
    assert record["sha256"] == hashlib.sha256(uploaded).hexdigest()
    assert record["size"] == len(uploaded) > 1 << 20
    assert record["image_format"] == "raw" and record["config_commit"] == COMMIT
    assert record["build_task_id"] == TASK_ID
    assert key == f"{record['name']}.raw" and record["name"].startswith("linux-test-disk-")
    assert manifest.parse_disk_image(record).disk_digest == record["disk_digest"]
    log = capsys.readouterr().out
    for step in ("fetching the image https://images.example.com/tiny.qcow2",
                 "matches the config", "converting: qemu-img convert", "uploading",
                 "wrote public/disk-image.json"):
        assert step in log


@needs_qemu
def test_a_second_run_for_the_same_digest_reuses_the_uploaded_image(tmp_path, aws, qcow2,
                                                                     capsys):
    config = write_fleet(tmp_path)
    with responses.RequestsMock() as http:
        http.get(SOURCE_URL, body=qcow2)
        first = run_disk(tmp_path, config)[1]
    with responses.RequestsMock():  # no download allowed
        status, again = run_disk(tmp_path, config)
    assert status == 0 and again["sha256"] == first["sha256"]
    assert "already holds this disk digest: reusing it" in capsys.readouterr().out


def test_a_source_whose_sha256_differs_from_the_config_is_refused(tmp_path, aws, capsys):
    config = write_fleet(tmp_path, source_sha256="0" * 64)
    with responses.RequestsMock() as http:
        http.get(SOURCE_URL, body=b"not the image the config names")
        status, record = run_disk(tmp_path, config)
    assert status == 2 and record is None
    err = capsys.readouterr().err
    assert "but the config says 0000" in err and "Traceback" not in err
    assert aws.list_objects_v2(Bucket="disk-images").get("KeyCount") == 0


def test_a_server_error_while_downloading_is_transient(tmp_path, aws, capsys):
    config = write_fleet(tmp_path)
    with responses.RequestsMock() as http:
        http.get(SOURCE_URL, status=503)
        assert run_disk(tmp_path, config)[0] == 75
    assert "HTTP 503" in capsys.readouterr().err


STAND_IN = """\
import json, sys
iso, output, config = sys.argv[1:4]
inputs = json.load(open(config))
with open(output, "wb") as out:
    out.write(b"VHD:" + inputs["key"].encode() + b":" + open(iso, "rb").read())
"""


def test_an_iso_is_converted_by_the_configured_command_run_as_a_subprocess(tmp_path, aws):
    iso = b"fake windows iso"
    aws.put_object(Bucket="media", Key="iso/windows.iso", Body=iso)
    config = write_fleet(tmp_path, iso_sha256=hashlib.sha256(iso).hexdigest())
    script = tmp_path / "convert.py"
    script.write_text(STAND_IN)
    status, record = run_disk(tmp_path, config, "windows-test", "--convert-command",
                              f"{sys.executable} {script} {{iso}} {{output}} {{config}}")
    assert status == 0
    body = aws.get_object(Bucket="disk-images",
                          Key=f"{record['name']}.vhd")["Body"].read()
    assert body == b"VHD:windows-test:" + iso
    assert record["sha256"] == hashlib.sha256(body).hexdigest() and record["image_format"] == "vhd"


def test_a_failing_conversion_command_fails_the_build_with_its_status(tmp_path, aws, capsys):
    aws.put_object(Bucket="media", Key="iso/windows.iso", Body=b"iso")
    config = write_fleet(tmp_path)
    status, _ = run_disk(tmp_path, config, "windows-test", "--convert-command",
                         f"{sys.executable} -c 'raise SystemExit(4)'")
    assert status == 3
    assert "conversion failed with exit status 4" in capsys.readouterr().err


def test_an_iso_without_a_conversion_command_says_how_to_give_one(tmp_path, aws, capsys,
                                                                  monkeypatch):
    monkeypatch.delenv("CIB_CONVERT_COMMAND", raising=False)
    aws.put_object(Bucket="media", Key="iso/windows.iso", Body=b"iso")
    config = write_fleet(tmp_path)
    assert run_disk(tmp_path, config, "windows-test")[0] == 2
    assert "--convert-command or CIB_CONVERT_COMMAND" in capsys.readouterr().err


def test_a_key_built_from_a_base_image_has_no_disk_image(tmp_path, aws, capsys):
    config = write_fleet(tmp_path)
    assert run_disk(tmp_path, config, "based-test")[0] == 2
    assert "needs no disk image" in capsys.readouterr().err


def test_qemu_writes_vhd_fixed_size_for_azure():
    command = qemu_convert_command(Path("a.qcow2"), "qcow2", Path("b.vhd"), "vpc")
    assert command == ["qemu-img", "convert", "-p", "-f", "qcow2", "-O", "vpc",
                       "-o", "subformat=fixed,force_size=on", "a.qcow2", "b.vhd"]


def test_a_conversion_command_with_an_unknown_placeholder_is_refused():
    with pytest.raises(CibError, match="bad placeholder"):
        conversion_command("convert {isofile}", iso=Path("i"), output=Path("o"),
                           config=Path("c"), out_format="vpc")
