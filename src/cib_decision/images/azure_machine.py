"""`cib image machine --key K --target azure/<region>`: an Azure image for one Azure target.

Steps, each one line (or one line per state change) in the task log:

1. **reuse**: an image of the target's resource group (a managed image, or a version of the
   key's image in the target's `gallery`) tagged with this key and machine digest is reused
   as it is (`--overwrite` builds a new one under the next free name, `<key>-r<N>-<digest>`;
   the existing image is never touched);
2. **base**: the builder boots `image.base.azure` (a marketplace image: `publisher`, `offer`,
   `sku`, `version`), or, for keys with a disk image, a managed image made from the disk
   image's VHD in blob storage (reused by `cib:disk-sha256`); a VHD in S3 or in another
   region's storage account is first copied into the target's storage account
   (`azure_vhd`);
3. **network**: the target's network security group (`network.flow`), virtual network and
   subnet are created when missing (and kept: they are the target's, not the builder's);
4. **launch** a builder VM in the target's resource group (size `machine.type`, or
   `machine.format` with `machine.cpu`; disks from `disk`; the target's `tag`s, readable
   through instance metadata) with a NIC in that subnet, and a public IP only when the target
   asks for one (`network.public-ip: true`);
5. **bootstrap**: the target's `bootstrap` runs through the VM's run command (PowerShell on
   Windows, bash on Linux); the build waits until it stops the VM (at most
   `--bootstrap-timeout`; a bootstrap that reports a failed execution, or a time-out, fails the
   build with exit 3), publishes the run command's output as `public/builder.log` and matches
   the key's validation rules against it (images/validation.py): a missed rule fails the
   build (exit 3) before anything is captured;
6. **capture**: the VM is deallocated and generalized and captured as a managed image named
   `naming.image_name(key, machine digest)`, or, when the target names a `gallery`, as a
   version of the key's image definition in that gallery, replicated to the regions of the
   key's Azure targets and the target's `copies`; tagged with the key, both digests, the config
   commit, the build task and the environment;
7. **clean up** the VM, its NIC, public IP and disks, on success and on failure, unless
   `--keep-resources` (`disable-cleanup`) asks to keep them;
8. **record** the image in `public/machine-image.json`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .. import manifest
from ..clouds.aws import S3
from ..clouds.azure import Azure, Operation, run_command_output
from ..config import Target, normalise_region
from ..errors import BuildError, CibError
from .azure_vhd import vhd_url
from .bootstrap import bash_script, is_windows, powershell
from .context import BuildContext
from .identity import (
    TAG_PREFIX,
    builder_resources,
    builder_tags,
    identity_tags,
    image_tags,
    next_name,
    revision,
)
from .validation import CollectedLog, check_builder

ADMIN_USER = "cibadmin"
# The bootstrap's own words when an execution keeps failing (images/bootstrap.py).
BOOTSTRAP_FAILED = re.compile(r"cib: (\S+) failed; not stopping")
PENDING = {"Creating", "Updating", "Accepted", "InProgress"}


@dataclass(frozen=True)
class Timeouts:
    """Bounds of the waits, in seconds, and the polling interval."""

    bootstrap: float = 3 * 3600
    image: float = 2 * 3600
    replication: float = 4 * 3600
    operation: float = 30 * 60  # creating, deallocating and deleting the builder VM
    interval: float = 15.0


# --- pure decisions --------------------------------------------------------------------------


def builder_names(image: str, task_id: str) -> dict[str, str]:
    """Names of the builder's resources: unique per task, at most 64 characters."""
    base = re.sub(r"[^A-Za-z0-9-]", "-", f"cib-{image}")[:40].rstrip("-") + f"-{task_id}"
    return {"vm": base, "nic": f"{base}-nic", "ip": f"{base}-ip", "os": f"{base}-os",
            "computer": "cib" + hashlib.sha256(base.encode()).hexdigest()[:12]}


def image_definition(key: str) -> str:
    """The gallery image definition of a key: its name, in the characters galleries allow."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", key)[:80]


def replication_regions(target: Target, targets: Iterable[Target] = ()) -> tuple[str, ...]:
    """The regions a gallery image version is replicated to: the target's own first, then the
    regions of the key's other Azure targets and the target's `copies`."""
    regions = [target.region, *(t.region for t in targets if t.platform == "azure"),
               *target.copies]
    return tuple(dict.fromkeys(normalise_region(r) for r in regions))


def version_name(moment: datetime) -> str:
    """A gallery image version (`Major.Minor.Patch`, each a 32-bit integer) from the build's
    time: `2026.1121.130500`. Reuse goes by tags, so the version only has to be new."""
    return f"{moment.year}.{int(moment.strftime('%m%d'))}.{int(moment.strftime('%H%M%S'))}"


def security_rules(rules: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """ARM security rules from the config's `network.flow.rules` (camelCase or PascalCase;
    a list of source prefixes becomes `sourceAddressPrefixes`)."""
    converted = []
    for rule in rules:
        get = {k[0].lower() + k[1:]: v for k, v in rule.items()}.get
        properties: dict[str, Any] = {
            "access": get("access", "Allow"), "protocol": get("protocol", "*"),
            "direction": get("direction", "Inbound"), "priority": int(get("priority", 1000)),
            "sourcePortRange": str(get("sourcePortRange", "*"))}
        if get("description"):
            properties["description"] = str(get("description"))
        for field_name in ("sourceAddressPrefix", "destinationAddressPrefix",
                           "destinationPortRange"):
            value = get(field_name, "*")
            if isinstance(value, list):
                properties[field_name.replace("Prefix", "Prefixes").replace(
                    "Range", "Ranges")] = [str(v) for v in value]
            else:
                properties[field_name] = str(value)
        converted.append({"name": str(get("name")), "properties": properties})
    return converted


def vm_body(ctx: BuildContext, target: Target, names: dict[str, str], base: dict[str, Any],
            nic_id: str, tags: dict[str, str], password: str) -> dict[str, Any]:
    """The builder VM: size, disks from `disk`, OS profile, its NIC (disks and NIC deleted
    with the VM)."""
    disks = list(target.disks)
    os_disk = target.os_disk
    storage: dict[str, Any] = {
        "imageReference": base,
        "osDisk": {"name": names["os"], "createOption": "FromImage", "deleteOption": "Delete",
                   "caching": os_disk.get("caching", "ReadWrite"),
                   "managedDisk": {"storageAccountType": target.disk_type(os_disk)}}}
    if os_disk.get("size"):
        storage["osDisk"]["diskSizeGB"] = int(os_disk["size"])
    data = [d for d in disks if not d.get("os")]
    if data:
        storage["dataDisks"] = [
            {"lun": lun, "name": f"{names['vm']}-data{lun}", "createOption": "Empty",
             "diskSizeGB": int(d.get("size", 32)), "caching": d.get("caching", "None"),
             "deleteOption": "Delete",
             "managedDisk": {"storageAccountType": target.disk_type(d)}}
            for lun, d in enumerate(data)]
    windows = is_windows(ctx.key.image)
    os_profile: dict[str, Any] = {"computerName": names["computer"], "adminUsername": ADMIN_USER,
                                  "adminPassword": password}
    if windows:
        os_profile["windowsConfiguration"] = {"provisionVMAgent": True,
                                              "enableAutomaticUpdates": False}
    else:
        os_profile["linuxConfiguration"] = {"disablePasswordAuthentication": False,
                                            "provisionVMAgent": True}
    return {"location": normalise_region(target.region), "tags": tags, "properties": {
        "hardwareProfile": {"vmSize": target.builder_machine_size},
        "storageProfile": storage, "osProfile": os_profile,
        "networkProfile": {"networkInterfaces": [
            {"id": nic_id, "properties": {"primary": True, "deleteOption": "Delete"}}]}}}


def run_command(image: dict[str, Any], target: Target) -> tuple[str, list[str]]:
    """The run command of the bootstrap: `(command id, script lines)`. The PowerShell
    bootstrap without its user-data markers on Windows, the bash script on Linux."""
    executions = target.bootstrap_executions
    if is_windows(image):
        lines = [line for line in powershell(executions).splitlines()
                 if not re.fullmatch(r"</?powershell>|<persist>.*</persist>", line)]
        return "RunPowerShellScript", lines
    return "RunShellScript", bash_script(executions).splitlines()


def reusable_image(images: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """Of the images (or gallery versions) tagged with this digest, the newest revision that
    succeeded or is on its way; failed ones are ignored."""
    usable = [i for i in images if (i.get("properties") or {}).get("provisioningState")
              in ("Succeeded", *PENDING)]
    return max(usable, key=lambda i: (revision(image_label(i)), i["name"]), default=None)


def image_label(image: dict[str, Any]) -> str:
    """The cib name of an image: its `Name` tag (gallery versions are numbered), else its
    resource name."""
    return (image.get("tags") or {}).get("Name") or image["name"]


def random_password() -> str:
    """A throw-away admin password meeting Azure's complexity rules (never logged)."""
    return secrets.token_urlsafe(24) + "aA1!"


# --- the build --------------------------------------------------------------------------------


@dataclass
class Ledger:
    """Builder resources created so far, cleaned up in this order."""

    vm: str | None = None
    nic: str | None = None
    public_ip: str | None = None
    disks: list[str] = field(default_factory=list)

    def held(self) -> list[str]:
        """What `--keep-resources` leaves, as the log names it."""
        return [x for x in (self.vm, self.nic, self.public_ip, *self.disks) if x]


@dataclass
class AzureBuild:
    """Everything an Azure machine-image build needs besides the context."""

    azure: Azure
    target: Target
    overwrite: bool = False
    disk_record: manifest.DiskImageRecord | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    password: Callable[[], str] = random_password
    s3: Callable[[], S3] = S3  # only for a disk image in S3

    @property
    def group(self) -> str:
        if not self.target.group:
            raise CibError(f"{self.target.id} has no resource group (`group`)")
        return self.target.group

    @property
    def location(self) -> str:
        return normalise_region(self.target.region)


def finish(ctx: BuildContext, what: str, operation: Operation, timeout: float,
           build: AzureBuild) -> dict[str, Any]:
    """Step an ARM operation from a bounded wait (one line per state change); its result, or
    ARM's error as cib's."""
    ctx.progress.wait(what, operation.state, done=Operation.ENDED, timeout=timeout,
                      interval=build.timeouts.interval)
    return operation.result()


def existing_images(ctx: BuildContext, build: AzureBuild) -> list[dict[str, Any]]:
    """The images (or gallery versions) of the target's group tagged with this key and digest,
    of this kind of build (pull request or not)."""
    identity = identity_tags(ctx.key.name, ctx.digests.machines[build.target.id])
    gallery = build.target.gallery
    if gallery:
        found = build.azure.tagged("gallery-image-version", build.group, identity, gallery,
                                   image_definition(ctx.key.name))
    else:
        found = build.azure.tagged("image", build.group, identity)
    return [i for i in found if (ctx.pull_request is None) == ("-pr" not in image_label(i))]


def base_image(ctx: BuildContext, build: AzureBuild) -> dict[str, Any]:
    """The builder's `imageReference`: the configured marketplace image or a managed image of
    the disk image."""
    base = (ctx.key.image.get("base") or {}).get("azure")
    if base:
        reference = {k: str(base[k]) for k in ("publisher", "offer", "sku")}
        reference["version"] = str(base.get("version") or "latest")
        ctx.progress.say(f"base image: {':'.join(reference.values())} (marketplace)")
        return reference
    return {"id": disk_image(ctx, build)}


def disk_image(ctx: BuildContext, build: AzureBuild) -> str:
    """A managed image of the disk image's VHD in the target's group (reused by
    `cib:disk-sha256`), the VHD first copied into the target's region when it is in S3 or
    another region (`azure_vhd`); its id."""
    record = build.disk_record
    if record is None:
        raise CibError(f"{ctx.key.name} has no image.base.azure: give the disk image record "
                       "(CIB_DISK_IMAGE_TASK_ID in the task, or --disk-image FILE)")
    identity = {f"{TAG_PREFIX}disk-sha256": record.sha256}
    found = [i for i in build.azure.tagged("image", build.group, identity)
             if i["properties"].get("provisioningState") == "Succeeded"]
    if found:
        ctx.progress.say(f"disk image {record.name} was made into image {found[0]['name']} "
                         "before")
        return found[0]["id"]
    vhd = vhd_url(ctx, build.azure, record, build.target, build.s3, build.timeouts.interval)
    tags = {"Name": record.name, f"{TAG_PREFIX}key": ctx.key.name,
            f"{TAG_PREFIX}disk-digest": record.disk_digest, **identity,
            f"{TAG_PREFIX}build-task-id": ctx.task_id}
    os_type = "Windows" if is_windows(ctx.key.image) else "Linux"
    body = {"location": build.location, "tags": tags, "properties": {
        "hyperVGeneration": build.target.hyperv,
        "storageProfile": {"osDisk": {"osType": os_type, "osState": "Generalized",
                                      "blobUri": vhd,
                                      "storageAccountType": "Premium_LRS"}}}}
    ctx.progress.say(f"making image {record.name} of {vhd}")
    image = finish(ctx, f"image {record.name} to be created",
                   build.azure.begin_create("image", build.group, record.name, body=body),
                   build.timeouts.image, build)
    return image["id"]


def ensure_network(ctx: BuildContext, build: AzureBuild) -> str:
    """The target's subnet (with its security group and virtual network), created when
    missing; its id."""
    network = build.target.network
    subnet = network.get("subnet") or {}
    if not network.get("name") or not subnet.get("name"):
        raise CibError(f"{build.target.id} has no network.name and network.subnet.name")
    azure, group = build.azure, build.group
    existing = azure.get("subnet", group, network["name"], subnet["name"])
    if existing:
        return existing["id"]
    flow = network.get("flow") or {}
    subnet_body: dict[str, Any] = {"addressPrefix": subnet.get("prefix") or network.get("prefix")}
    if flow.get("name"):
        nsg = azure.get("security-group", group, flow["name"])
        if nsg is None:
            nsg = azure.create("security-group", group, flow["name"], body={
                "location": build.location,
                "properties": {"securityRules": security_rules(flow.get("rules") or ())}})
            count = len(flow.get("rules") or ())
            ctx.progress.say(f"created network security group {flow['name']} ({count} "
                             f"rule{'s' if count != 1 else ''})")
        subnet_body["networkSecurityGroup"] = {"id": nsg["id"]}
    if azure.get("virtual-network", group, network["name"]) is None:
        azure.create("virtual-network", group, network["name"], body={
            "location": build.location, "properties": {
                "addressSpace": {"addressPrefixes": [network.get("prefix")
                                                     or subnet_body["addressPrefix"]]},
                "dhcpOptions": {"dnsServers": list(network.get("dns") or ())},
                "subnets": [{"name": subnet["name"], "properties": subnet_body}]}})
        ctx.progress.say(f"created virtual network {network['name']} with subnet "
                         f"{subnet['name']}")
    else:
        azure.create("subnet", group, network["name"], subnet["name"],
                     body={"properties": subnet_body})
        ctx.progress.say(f"created subnet {subnet['name']} in {network['name']}")
    return azure.id_of("subnet", group, network["name"], subnet["name"])


def launch(ctx: BuildContext, build: AzureBuild, ledger: Ledger, base: dict[str, Any],
           name: str) -> str:
    """Create the NIC (and public IP) and the builder VM; the VM's name."""
    azure, group, target = build.azure, build.group, build.target
    subnet = ensure_network(ctx, build)
    names = builder_names(name, ctx.task_id)
    tags = builder_tags(ctx, target, name)
    config: dict[str, Any] = {"subnet": {"id": subnet},
                              "privateIPAllocationMethod": "Dynamic"}
    if target.public_ip:
        ip = azure.create("public-ip", group, names["ip"], body={
            "location": build.location, "tags": tags, "sku": {"name": "Standard"},
            "properties": {"publicIPAllocationMethod": "Static"}})
        ledger.public_ip = names["ip"]
        config["publicIPAddress"] = {"id": ip["id"]}
    nic = azure.create("network-interface", group, names["nic"], body={
        "location": build.location, "tags": tags,
        "properties": {"ipConfigurations": [{"name": "ipconfig", "properties": config}]}})
    ledger.nic = names["nic"]
    ctx.progress.say(f"created NIC {names['nic']}" + (f" and public IP {names['ip']}"
                                                      if ledger.public_ip else
                                                      " (no public IP)"))
    body = vm_body(ctx, target, names, base, nic["id"], tags, build.password())
    storage = body["properties"]["storageProfile"]
    ledger.vm = names["vm"]
    ledger.disks = [storage["osDisk"]["name"], *(d["name"] for d in
                                                 storage.get("dataDisks") or ())]
    operation = azure.begin_create("virtual-machine", group, names["vm"], body=body)
    ctx.progress.say(f"creating builder VM {names['vm']} ({target.builder_machine_size}) in "
                     f"{group}")
    finish(ctx, f"builder VM {names['vm']} to be created", operation,
           build.timeouts.operation, build)
    for disk in ledger.disks:  # Azure does not pass a VM's tags on to its disks
        azure.set_tags("disk", group, disk, tags=tags)
    return names["vm"]


def bootstrap(ctx: BuildContext, build: AzureBuild, vm: str) -> CollectedLog:
    """Run the bootstrap through the VM's run command and wait until it stops the VM; the
    run command's output (what validation rules are matched against)."""
    azure, group = build.azure, build.group
    command, script = run_command(ctx.key.image, build.target)
    operation = azure.begin_run_command(group, vm, command, script)
    kind = "PowerShell" if command == "RunPowerShellScript" else "bash"
    ctx.progress.say(f"running the {kind} bootstrap of {build.target.id} on builder {vm} "
                     f"({len(script)} lines, {command})")
    ended = False
    output = ""

    def poll() -> str:
        nonlocal ended, output
        state = azure.power_state(group, vm)
        if ended or state in ("stopped", "deallocated"):
            return state
        if operation.state() in Operation.ENDED:
            ended = True
            stdout, stderr = run_command_output(operation.result())
            output = stdout
            failed = BOOTSTRAP_FAILED.search(stdout)
            if failed:
                tail = " | ".join(stdout.strip().splitlines()[-3:])
                errors = f"; stderr: {stderr.strip()}" if stderr.strip() else ""
                raise BuildError(f"the bootstrap of {build.target.id} failed on builder {vm}: "
                                 f"execution {failed.group(1)} kept failing (last output: "
                                 f"{tail}{errors})")
            lines = len(stdout.splitlines())
            ctx.progress.say(f"the run command on {vm} ended ({lines} line"
                             f"{'s' if lines != 1 else ''} of output)")
            state = azure.power_state(group, vm)
        return state

    ctx.progress.wait(f"the bootstrap to stop builder {vm}", poll,
                      done={"stopped", "deallocated"}, failed={"missing"},
                      timeout=build.timeouts.bootstrap, interval=build.timeouts.interval)
    source = f"the run command's output on {vm}"
    if not ended:  # the VM stopped first: the run command reports once it sees that
        try:
            finish(ctx, f"the run command on {vm} to report", operation,
                   build.timeouts.operation, build)
            output = run_command_output(operation.result())[0]
        except CibError as exc:
            ctx.progress.say(f"the run command on {vm} left no output: {exc}")
            return CollectedLog("", ())
    return CollectedLog(output, (source,))


def capture(ctx: BuildContext, build: AzureBuild, vm: str, name: str
            ) -> tuple[str, dict[str, str]]:
    """Deallocate, generalize and capture the builder; the image's id and its copies
    (`{region: id}` of a gallery version's other regions)."""
    azure, group, target = build.azure, build.group, build.target
    finish(ctx, f"builder {vm} to deallocate", azure.begin_vm_action("deallocate", group, vm),
           build.timeouts.operation, build)
    azure.generalize(group, vm)
    ctx.progress.say(f"generalized builder {vm}")
    tags = image_tags(ctx, target, name)
    vm_id = azure.id_of("virtual-machine", group, vm)
    gallery = target.gallery
    if not gallery:
        operation = azure.begin_create("image", group, name, body={
            "location": build.location, "tags": tags, "properties": {
                "sourceVirtualMachine": {"id": vm_id}, "hyperVGeneration": target.hyperv}})
        ctx.progress.say(f"capturing builder {vm} as image {name} in {group}")
        image = finish(ctx, f"image {name} to be created", operation, build.timeouts.image,
                       build)
        return image["id"], {}
    definition = ensure_definition(ctx, build, gallery)
    regions = replication_regions(target, ctx.key.targets)
    version = version_name(ctx.now())
    operation = azure.begin_create(
        "gallery-image-version", group, gallery, definition, version, body={
            "location": build.location, "tags": tags, "properties": {
                "publishingProfile": {"targetRegions": [{"name": r, "regionalReplicaCount": 1}
                                                        for r in regions]},
                "storageProfile": {"source": {"virtualMachineId": vm_id}}}})
    ctx.progress.say(f"capturing builder {vm} as {gallery}/{definition} version {version} "
                     f"({name}), replicated to {', '.join(regions)}")
    image = finish(ctx, f"version {version} of {definition} to replicate to "
                        f"{len(regions)} region{'s' if len(regions) != 1 else ''}",
                   operation, build.timeouts.replication, build)
    return image["id"], {r: image["id"] for r in regions[1:]}


def ensure_definition(ctx: BuildContext, build: AzureBuild, gallery: str) -> str:
    """The gallery (and the key's image definition in it), created when missing; the
    definition's name."""
    definition = image_definition(ctx.key.name)
    ensure_gallery_image(build.azure, build.group, build.location, gallery, definition,
                         os_type="Windows" if is_windows(ctx.key.image) else "Linux",
                         generation=build.target.hyperv, say=ctx.progress.say)
    return definition


def ensure_gallery_image(azure: Azure, group: str, location: str, gallery: str,
                         definition: str, *, os_type: str, generation: str,
                         say: Callable[[str], None]) -> None:
    """A gallery in `group` and a generalized image definition in it (publisher `cib`, offer
    the definition, sku `default`), each created when missing."""
    if azure.get("gallery", group, gallery) is None:
        azure.create("gallery", group, gallery, body={
            "location": location, "properties": {"description": "cib machine images"}})
        say(f"created gallery {gallery} in {group}")
    if azure.get("gallery-image", group, gallery, definition) is None:
        azure.create("gallery-image", group, gallery, definition, body={
            "location": location, "properties": {
                "osType": os_type, "osState": "Generalized", "hyperVGeneration": generation,
                "identifier": {"publisher": "cib", "offer": definition, "sku": "default"}}})
        say(f"created image definition {gallery}/{definition}")


def clean_up(ctx: BuildContext, build: AzureBuild, ledger: Ledger) -> None:
    """Delete the builder VM, then its NIC, public IP and disks; problems are reported, not
    raised (purge tasks catch what is left)."""
    azure, group = build.azure, build.group
    steps: list[tuple[str, Callable[[], bool]]] = []
    if ledger.vm:
        def delete_vm() -> bool:
            finish(ctx, f"builder VM {ledger.vm} to be deleted",
                   azure.begin_delete("virtual-machine", group, ledger.vm),
                   build.timeouts.operation, build)
            return True
        steps.append((f"VM {ledger.vm}", delete_vm))
    if ledger.nic:
        steps.append((f"NIC {ledger.nic}", lambda: azure.delete(
            "network-interface", group, ledger.nic)))
    if ledger.public_ip:
        steps.append((f"public IP {ledger.public_ip}", lambda: azure.delete(
            "public-ip", group, ledger.public_ip)))
    for disk in ledger.disks:
        steps.append((f"disk {disk}", lambda d=disk: azure.delete("disk", group, d)))
    for what, step in steps:
        try:
            gone = step()
            ctx.progress.say(f"cleaned up {what}" if gone else f"{what} went with the VM")
        except CibError as exc:
            ctx.progress.say(f"warning: could not clean up {what}: {exc}")


def build_new(ctx: BuildContext, build: AzureBuild, name: str
              ) -> tuple[str, dict[str, str], dict[str, Any] | None]:
    """Launch, bootstrap, check the validation rules, capture and clean up; the new image's
    id, its copies and what the record says of the rules (`validation.check_builder`)."""
    ledger = Ledger()
    with builder_resources(ctx, ledger.held, lambda: clean_up(ctx, build, ledger)):
        base = base_image(ctx, build)
        vm = launch(ctx, build, ledger, base, name)
        validated = check_builder(ctx, build.target.id, bootstrap(ctx, build, vm))
        return (*capture(ctx, build, vm, name), validated)


def _wait_existing(ctx: BuildContext, build: AzureBuild, image: dict[str, Any]) -> None:
    """Wait for a reused image that is still being created (by another run)."""
    names = image["id"].split("/providers/Microsoft.Compute/", 1)[1].split("/")[1::2]
    kind = "gallery-image-version" if len(names) == 3 else "image"

    def state() -> str:
        found = build.azure.get(kind, build.group, *names)
        return (found or {}).get("properties", {}).get("provisioningState", "missing")

    ctx.progress.wait(f"image {image_label(image)} to be created", state, done={"Succeeded"},
                      failed={"Failed", "Canceled", "missing"}, timeout=build.timeouts.image,
                      interval=build.timeouts.interval)


def build_machine_image(ctx: BuildContext, build: AzureBuild) -> manifest.MachineImageRecord:
    """Build (or reuse) the image of one Azure target; write and return its record."""
    target = build.target
    if target.platform != "azure":
        raise CibError(f"{target.id} is not an Azure target")
    machine = ctx.digests.machines[target.id]
    gallery = target.gallery
    ctx.progress.say(f"machine image of {ctx.key.name} for {target.id} in {build.group} "
                     f"(machine digest {machine}, disk digest {ctx.digests.disk})"
                     + (f", gallery {gallery}" if gallery else ""))
    existing = existing_images(ctx, build)
    found = reusable_image(existing)
    copies: dict[str, str] = {}
    validated = None  # a reused image passed the rules when it was built
    if found and not build.overwrite:
        image_id, name = found["id"], image_label(found)
        ctx.progress.say(f"reusing {name} ({image_id}): built for this digest by task "
                         f"{(found.get('tags') or {}).get(f'{TAG_PREFIX}build-task-id', '?')}")
        if found["properties"].get("provisioningState") != "Succeeded":
            _wait_existing(ctx, build, found)
        if gallery:
            regions = [r.get("name", "") for r in (found["properties"].get(
                "publishingProfile") or {}).get("targetRegions") or ()]
            copies = {normalise_region(r): image_id for r in regions
                      if normalise_region(r) != build.location}
    else:
        if found:
            ctx.progress.say(f"--overwrite: building a new image; {image_label(found)} stays "
                             "as it is")
        name = next_name(ctx.key.name, machine, (image_label(i) for i in existing),
                         ctx.pull_request)
        image_id, copies, validated = build_new(ctx, build, name)
    record = manifest.machine_image_record(
        ctx.key.name, target, image_id=image_id, machine_digest=machine,
        disk_digest=ctx.digests.disk, config_commit=ctx.config_commit,
        build_task_id=ctx.task_id, created=ctx.now(), pull_request=ctx.pull_request)
    if record.image_name != name:  # a revision (-r<N>) of an overwritten image
        record = manifest.parse_machine_image({**record.to_json(), "image_name": name})
    if validated is not None:
        record = manifest.with_validation(record, validated)
    if copies:
        record = manifest.with_copies(record, copies)
    ctx.write_artifact("machine-image.json", manifest.dumps(record))
    return record
