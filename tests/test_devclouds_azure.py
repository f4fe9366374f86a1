"""The Azure fake served on a local HTTPS port (`devclouds.azure_server.AzureServer`), and the
tasks of a push of win10-64 run against it as a worker runs them: each a separate process
(`python -m cib_decision ...`) in a checkout of its own, holding only what a task holds
(`TASK_ID`, its Taskcluster credentials, its `payload.env`). Every cloud setting (Azure's
service principal, authority host, ARM and blob endpoints and the CA to trust; AWS's keys and
endpoint) comes from the level's clouds secret in the local Taskcluster (`dev_taskcluster`),
and the real azure-identity, azure-mgmt and azure-storage-blob clients (and boto3) do the
talking. The fake's run command plays the builder's bootstrap, as in the in-process tests.

win10-64's disk image lives in S3, so the whole push also needs the local AWS
(`devclouds.aws.MotoServer`: its ISO a stand-in whose SHA-256 is pinned in the config copy,
converted by the stand-in conversion command, which needs qemu-img); without qemu-img that
test skips, and the other one still runs the machine task (from a VHD already in the
target's region) and the purge against Azure alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import slugid

import cib_decision
import taskcluster
from cib_decision import cloudcreds, manifest
from cib_decision.clouds.azure import Azure, Endpoints
from cib_decision.config import DirectorySource, load_fleet
from cib_decision.devclouds.aws import STAND_IN_CONVERT_COMMAND, MotoServer, pin_sources, seed_fleet
from cib_decision.devclouds.azure_fake import StaticToken
from cib_decision.devclouds.azure_server import AzureServer
from cib_decision.devclouds.transcript import transcript
from cib_decision.devtc.testing import new_task
from cib_decision.errors import CibError
from cib_decision.images.context import load_context

from .conftest import CONFIG_DIR
from .imagefleet import COMMIT

KEY, TARGET, REGION = "win10-64", "azure/centralus", "centralus"
GROUP, STORAGE = "rg-central-us-win10", "sacentraluswin10"
SECRET = "project/cib/level-3/clouds"
SOURCE = str(Path(cib_decision.__file__).resolve().parents[1])
BUILDER = {"virtualMachines", "disks", "networkInterfaces", "publicIPAddresses"}


@pytest.fixture
def azure():
    with AzureServer() as server:
        yield server


@pytest.fixture
def aws():
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is not installed (Debian: qemu-utils): the local AWS's disk "
                    "sources and the stand-in ISO conversion need it")
    with MotoServer() as server:
        yield server


class Tasks:
    """Tasks of level 3's image queue, run as a worker runs them: `run` claims the task for
    its credentials, runs `cib` in a checkout of its own (the config at `config`), then
    resolves the task with the artifacts the command wrote (`public/`)."""

    def __init__(self, tmp_path: Path, dev, config: Path, secret: dict[str, str]):
        self.tmp_path, self.dev, self.config = tmp_path, dev, config
        dev.set_secret(SECRET, secret)

    def create(self, dependencies=(), env=None, state: str | None = None,
               kind: str | None = None) -> str:
        """A task that may read the clouds secret (resolved as `state` when given), of `kind`
        (its `tags.kind`, as taskgraph tags tasks); its id."""
        task_id = slugid.nice()
        taskcluster.Queue(self.dev.options()).createTask(task_id, new_task(
            taskQueueId="cib-3/images", dependencies=list(dependencies),
            tags={"kind": kind} if kind else None,
            scopes=[f"secrets:get:{SECRET}"], payload={"env": {
                "CIB_HEAD_REV": COMMIT, "CIB_ENVIRONMENT": "staging", "CIB_LEVEL": "3",
                **(env or {})}}))
        if state:
            self.dev.resolve_task(task_id, state=state)
        return task_id

    def run(self, task_id: str, *args: str) -> subprocess.CompletedProcess:
        definition = taskcluster.Queue(self.dev.options()).task(task_id)
        credentials = self.dev.task_credentials(task_id)["credentials"]
        checkout = self.checkout(task_id)
        shutil.copytree(self.config, checkout / "config")
        environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
                   "HOME": str(self.tmp_path), "PYTHONPATH": SOURCE, "TASK_ID": task_id,
                   "TASKCLUSTER_ROOT_URL": self.dev.root_url,
                   "TASKCLUSTER_CLIENT_ID": credentials["clientId"],
                   "TASKCLUSTER_ACCESS_TOKEN": credentials["accessToken"],
                   "TASKCLUSTER_CERTIFICATE": credentials["certificate"],
                   **definition["payload"]["env"]}
        done = subprocess.run([sys.executable, "-m", "cib_decision", *args], cwd=checkout,
                              env=environ, capture_output=True, text=True, timeout=120,
                              check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        self.dev.resolve_task(task_id, artifacts={
            f"public/{p.name}": json.loads(p.read_text())
            for p in sorted((checkout / "artifacts").glob("*.json"))})
        return done

    def checkout(self, task_id: str) -> Path:
        return self.tmp_path / "tasks" / task_id / "src"

    def artifact(self, task_id: str, name: str) -> dict:
        return json.loads((self.checkout(task_id) / "artifacts" / name).read_text())


def builder_resources(fake) -> list[str]:
    return sorted(r["name"] for r in fake.resources()
                  if r["type"].split("/")[-1] in BUILDER)


def check_machine_image(fake, tasks: Tasks, machine: str, done, disk: manifest.DiskImageRecord
                        ) -> manifest.MachineImageRecord:
    """The machine task's record, image, base image of the disk image and clean-up."""
    record = manifest.parse_machine_image(tasks.artifact(machine, "machine-image.json"))
    assert (record.key, record.target, record.build_task_id) == (KEY, TARGET, machine)
    image = fake.resource(record.image_id)
    assert image["id"].split("/")[4] == GROUP and image["name"] == record.image_name
    assert image["tags"]["cib:build-task-id"] == machine
    assert image["tags"]["cib:disk-digest"] == disk.disk_digest
    (base,) = [i for i in fake.resources("Microsoft.Compute/images")
               if i["tags"].get("cib:disk-sha256") == disk.sha256]
    vm = fake.calls_of("PUT Microsoft.Compute/virtualMachines")[-1].body
    assert vm["properties"]["storageProfile"]["imageReference"] == {"id": base["id"]}
    assert fake.calls_of("POST */runCommand")[-1].body["commandId"] == "RunPowerShellScript"
    # the stand-in bootstrap writes what the script writes when every execution passes
    script = "\n".join(fake.calls_of("POST */runCommand")[-1].body["script"])
    played = transcript(script).splitlines()
    assert played[-1] == "cib: run-provisioner ran; the machine is to stop (PowerState/stopped)"
    assert "to stop builder" in done.stdout
    assert f"ended ({len(played)} lines of output)" in done.stdout
    assert builder_resources(fake) == []
    # signed in through the token endpoint; ARM and Storage took every token (for them)
    assert fake.calls_of("POST token") and not [c for c in fake.calls if c.status == 401]
    return record


def test_a_push_of_win10_64_runs_its_disk_machine_test_and_tag_tasks_as_processes(
        tmp_path, dev_taskcluster, aws, azure):
    fake, config = azure.fake, tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    seeded = seed_fleet(aws, load_fleet(DirectorySource(str(config))), tmp_path / "stand-ins")
    pin_sources(config, seeded.pins())
    assert GROUP in fake.add_fleet(load_fleet(DirectorySource(str(config))))
    tasks = Tasks(tmp_path, dev_taskcluster, config, {**aws.clouds_secret(), **azure.secret()})

    # disk-image-win10-64: the (stand-in) ISO from S3, converted, uploaded to S3
    disk = tasks.create(env={"CIB_CONVERT_COMMAND": STAND_IN_CONVERT_COMMAND})
    tasks.run(disk, "image", "disk", "--key", KEY)
    record = manifest.parse_disk_image(tasks.artifact(disk, "disk-image.json"))
    assert record.location.startswith("s3://example-cib-disk-images/win10-64-disk-")
    assert record.image_format.lower() == "vhd" and record.size % 512 == 0

    # machine-image-win10-64-azure-centralus: the VHD streamed from S3 into the target's
    # storage account, made into the builder's base, bootstrapped, captured, cleaned up
    machine = tasks.create([disk], {"CIB_DISK_IMAGE_TASK_ID": disk})
    done = tasks.run(machine, "image", "machine", "--key", KEY, "--target", TARGET)
    assert f"cloud credentials from secret {SECRET}: AWS, Azure" in done.stderr
    assert "streamed through this worker" in done.stdout
    vhd = fake.blob(STORAGE, "disk-images", record.location.rsplit("/", 1)[1])
    assert vhd.kind == "PageBlob" and len(vhd.content) == record.size
    assert hashlib.sha256(vhd.content).hexdigest() == vhd.metadata["cibsha256"] == record.sha256
    image = check_machine_image(fake, tasks, machine, done, record)

    # test-image-win10-64-azure-centralus: a VM booted from the new image runs the
    # environment's smoke tests through its run command, and is removed
    test = tasks.create([machine], {"CIB_MACHINE_IMAGE_TASK_ID": machine}, kind="test-image")
    done = tasks.run(test, "image", "test", "--key", KEY, "--target", TARGET,
                     "--poll-interval", "1")
    tested = manifest.parse_image_test(tasks.artifact(test, "image-test.json"))
    assert tested.passed and tested.image_id == image.image_id
    assert [r["name"] for r in tested.results] == ["powershell", "generalized"]
    vm = fake.calls_of("PUT Microsoft.Compute/virtualMachines")[-1].body
    assert vm["properties"]["storageProfile"]["imageReference"] == {"id": image.image_id}
    script = fake.calls_of("POST */runCommand")[-1].body["script"]
    assert "# test generalized" in script and "Stop-Computer -Force" not in script
    assert "test 'generalized' passed (exit 0" in done.stdout
    assert builder_resources(fake) == []

    # tag-win10-64: the release of the tested build, its seal a tag of the image
    tag = tasks.create([machine, test])
    tasks.run(tag, "image", "tag", "--key", KEY)
    release = manifest.parse_release(tasks.artifact(tag, "release.json"))
    assert [(i.target, i.id) for i in release.images] == [(TARGET, image.image_id)]
    assert release.images[0].tests == tested.summary()
    assert release.disk_sha256 == record.sha256
    assert fake.resource(image.image_id)["tags"]["cib:release-sha256"] == release.sha256


def test_a_machine_task_from_a_vhd_in_its_region_and_the_purge_after_it(
        tmp_path, dev_taskcluster, azure):
    fake = azure.fake
    assert GROUP in fake.add_fleet(load_fleet(DirectorySource(str(CONFIG_DIR))))
    tasks = Tasks(tmp_path, dev_taskcluster, CONFIG_DIR, azure.secret())
    # the disk task as if win10-64 stored its disk images in the target's account
    disk = tasks.create()
    ctx = load_context(KEY, CONFIG_DIR, artifacts=tmp_path,
                       environ={"TASK_ID": disk, "CIB_HEAD_REV": COMMIT})
    content = b"\1" * 4096 + bytes(8192) + b"\2" * 512  # whole 512-byte pages
    sha256 = hashlib.sha256(content).hexdigest()
    url = fake.put_blob(STORAGE, "disk-images", f"{KEY}-disk.vhd", content,
                        {"cibdiskdigest": ctx.digests.disk, "cibsha256": sha256})
    record = manifest.disk_image_record(
        KEY, platform="azure", region=REGION, location=url, image_format="vhd",
        size=len(content), sha256=sha256, disk_digest=ctx.digests.disk, config_commit=COMMIT,
        build_task_id=disk, created=datetime.now(UTC).replace(microsecond=0))
    dev_taskcluster.resolve_task(disk, artifacts={
        manifest.DISK_IMAGE_ARTIFACT: record.to_json()})

    machine = tasks.create([disk], {"CIB_DISK_IMAGE_TASK_ID": disk})
    done = tasks.run(machine, "image", "machine", "--key", KEY, "--target", TARGET)
    assert f"cloud credentials from secret {SECRET}: Azure" in done.stderr
    assert url.startswith(f"{azure.url}/{STORAGE}/disk-images/")  # the blob endpoint's
    assert f"making image {record.name} of {url}" in done.stdout  # used where it is
    image = check_machine_image(fake, tasks, machine, done, record)
    assert not fake.calls_of("PUT blob*")

    # purge-azure-centralus: what a failed build left two days ago goes, the image stays
    left = leftovers(fake, tasks.create(state="failed"))
    done = tasks.run(tasks.create(), "purge", "--cloud", "azure", "--region", REGION)
    assert not [i for i in left if fake.resource(i)]
    assert fake.resource(image.image_id) is not None and builder_resources(fake) == []
    assert done.stdout.count("| removed") == 3, done.stdout


def leftovers(fake, build_task: str) -> list[str]:
    """A builder as a failed build task left it two days ago: a deallocated VM, its NIC and
    its OS disk, tagged as builds tag them; their ids."""
    tags = {"cib:builder": "true", "cib:key": KEY, "cib:build-task-id": build_task}
    when = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    nic = fake.put("Microsoft.Network/networkInterfaces", GROUP, ["old-nic"], REGION,
                   {"ipConfigurations": []}, tags)
    vm = fake.put("Microsoft.Compute/virtualMachines", GROUP, ["old"], REGION,
                  {"timeCreated": when, "networkProfile": {
                      "networkInterfaces": [{"id": nic["id"]}]}}, tags)
    disk = fake.put("Microsoft.Compute/disks", GROUP, ["old-os"], REGION,
                    {"diskState": "Reserved", "timeCreated": when}, tags, managedBy=vm["id"])
    vm["properties"]["storageProfile"] = {"osDisk": {
        "name": "old-os", "managedDisk": {"id": disk["id"]}, "deleteOption": "Detach"}}
    nic["properties"]["virtualMachine"] = {"id": vm["id"]}
    fake.set_power(vm["id"], "deallocated")
    return [vm["id"], nic["id"], disk["id"]]


# --- the server refuses what Azure refuses -------------------------------------------------


def test_a_wrong_client_secret_is_refused_by_the_token_endpoint(azure):
    azure.fake.add_group(GROUP, REGION)
    settings = {**azure.environ(), "AZURE_CLIENT_SECRET": "not-it"}
    with pytest.raises(CibError, match=r"cannot authenticate to Azure.*AADSTS7000215"):
        Azure.from_environment(settings).list("image", GROUP)
    assert [c.status for c in azure.fake.calls_of("POST token")] == [401]
    assert not azure.fake.calls_of("GET Microsoft.Compute/*")


def test_arm_takes_only_tokens_issued_for_it_and_storage_only_for_storage(azure):
    azure.fake.add_group(GROUP, REGION)
    environ = azure.environ()
    stray = Azure.from_environment(environ)
    # a client asking for the public cloud's ARM audience, sent to the server's ARM
    public = Azure(stray.subscription, stray.credential, endpoints=Endpoints(
        resource_manager=azure.url, ca_bundle=environ["AZURE_CA_BUNDLE"]),
        credential_scopes=["https://management.azure.com/.default"], retry_total=0)
    with pytest.raises(CibError, match="InvalidAuthenticationTokenAudience"):
        public.list("image", GROUP)
    unknown = Azure(stray.subscription, StaticToken(), endpoints=stray.endpoints,
                    retry_total=0)
    with pytest.raises(CibError, match="cannot authenticate to Azure while reading blob"):
        unknown.blob_properties(STORAGE, "disk-images", "x.vhd")
    assert stray.list("image", GROUP) == []


# --- the endpoint settings: the public cloud's unless told ----------------------------------


def test_without_settings_the_endpoints_are_the_public_clouds():
    public = Endpoints.from_environment({})
    assert public == Endpoints()
    assert public.management_options() == {
        "base_url": "https://management.azure.com",
        "credential_scopes": ["https://management.azure.com/.default"]}
    assert public.credential_options() == {}
    url = public.blob_url("sacentral", "disk-images", "a.vhd")
    assert url == "https://sacentral.blob.core.windows.net/disk-images/a.vhd"
    assert public.parse_blob_url(url + "?sig=x") == ("sacentral", "disk-images", "a.vhd")
    assert public.parse_blob_url("https://127.0.0.1:1/sacentral/disk-images/a.vhd") is None


def test_a_sovereign_cloud_gets_its_endpoints_and_the_sdks_token_scope(tmp_path):
    government = Endpoints.from_environment({
        "AZURE_RESOURCE_MANAGER": "https://management.usgovcloudapi.net/",
        "AZURE_AUTHORITY_HOST": "https://login.microsoftonline.us",
        "AZURE_STORAGE_SUFFIX": "core.usgovcloudapi.net"})
    assert government.credential_scopes == \
        ["https://management.core.usgovcloudapi.net/.default"]
    assert government.credential_options() == {"authority": "https://login.microsoftonline.us"}
    assert government.account_url("sa") == "https://sa.blob.core.usgovcloudapi.net"
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    local = Endpoints.from_environment({
        "AZURE_RESOURCE_MANAGER": "https://127.0.0.1:8443",
        "AZURE_AUTHORITY_HOST": "https://127.0.0.1:8443",
        "AZURE_STORAGE_SUFFIX": "core.windows.net",
        "AZURE_BLOB_ENDPOINT": "https://127.0.0.1:8443/{account}", "AZURE_CA_BUNDLE": str(ca)})
    assert local.credential_scopes == ["https://127.0.0.1:8443/.default"]
    assert local.credential_options() == {  # MSAL's instance discovery knows no such host
        "authority": "https://127.0.0.1:8443", "disable_instance_discovery": True,
        "connection_verify": str(ca)}
    assert local.parse_blob_url("https://127.0.0.1:8443/sa1/c/d/e.vhd") == ("sa1", "c", "d/e.vhd")


@pytest.mark.parametrize("name, value, problem", [
    ("AZURE_RESOURCE_MANAGER", "http://127.0.0.1:1", "is not an https:// URL"),
    ("AZURE_BLOB_ENDPOINT", "https://127.0.0.1:1/sa", "must name the account once"),
    ("AZURE_STORAGE_SUFFIX", "https://core.windows.net", "is not a host name suffix"),
    ("AZURE_CA_BUNDLE", "/nonexistent/ca.pem", "no such file"),
])
def test_a_malformed_setting_is_an_error_naming_it(name, value, problem):
    with pytest.raises(CibError, match=f"{name}=.*{problem}"):
        Endpoints.from_environment({name: value})


def test_the_clouds_secret_carries_the_settings_only_with_the_credentials(azure):
    found = cloudcreds.variables(azure.secret(), SECRET)
    assert found == azure.environ()
    assert set(found) >= {"AZURE_AUTHORITY_HOST", "AZURE_RESOURCE_MANAGER",
                          "AZURE_BLOB_ENDPOINT", "AZURE_CA_BUNDLE"}
    with pytest.raises(CibError, match="Azure: azure_resource_manager without azure_tenant_id"):
        cloudcreds.variables({"azure_resource_manager": azure.url}, SECRET)
