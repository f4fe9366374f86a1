"""`cib image test --key K --target T`: the smoke tests of the image one machine-image task
made, before anything is tagged or deployed from it.

Steps, each one line in the task log:

1. **read** the machine-image record of the build (`public/machine-image.json` of the task in
   `CIB_MACHINE_IMAGE_TASK_ID`, the test task's own dependency; `--machine-image FILE` by hand).
   A build that left none failed: there is nothing to test, the task says so and ends (the tag
   task leaves that target out, as it does without tests);
2. **tests**: the key's smoke tests in this environment (`ImageKey.image_tests`: its own
   `validation.image.tests`, else the environment's `image-tests` for its OS family) and their
   digest (`digests.tests_digest`);
3. **boot** one instance from the new image in its region: on AWS an instance whose user data
   runs the tests and then stops it (the tests' verdicts are read from its console output), on
   Azure a VM on which the tests run through the run command (read from its output), on Google
   an instance whose startup script runs the tests and powers it off (read from its serial
   port output). The test
   script is `bootstrap.smoke_test_script`: every test runs, whatever the others did;
4. **clean up** the instance and its resources, on success and failure (kept with
   `--keep-resources`, `disable-cleanup`);
5. **record** `public/image-test.json` (each test's verdict, exit status and output digest) and
   the run's output as `public/image-test.log`; a failed test exits 3, so the key's tag task
   refuses to release the image and its pools are not deployed from it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import manifest
from ..config import Target
from ..config.model import ImageTest
from ..digests import tests_digest
from ..errors import BuildError, CibError
from ..tc import Queue
from .bootstrap import smoke_test_script
from .context import BuildContext
from .identity import builder_resources
from .validation import CollectedLog, describe_smoke_test, smoke_test_results

MACHINE_TASK_VARIABLE = "CIB_MACHINE_IMAGE_TASK_ID"
TEST_LOG = "image-test.log"


class SmokeTestsFailed(BuildError):
    """A smoke test of the image failed (exit 3): nothing is released or deployed from it."""


class NothingToTest(Exception):
    """The build this task tests left no image (it failed): no test runs, no record."""


@dataclass(frozen=True)
class SmokeTestTimeouts:
    """How long the tests may take on the booted instance, and the polling interval."""

    tests: float = 3600.0
    interval: float = 15.0


# A cloud's way to run the tests on an instance booted from the image: (context, target,
# machine-image record, tests, timeouts) -> the run's output.
Runner = Callable[[BuildContext, Target, manifest.MachineImageRecord, tuple[ImageTest, ...],
                   SmokeTestTimeouts], CollectedLog]


def machine_record(queue: Queue, environ: dict[str, str] | None = None
                   ) -> manifest.MachineImageRecord:
    """The record the machine-image task in `CIB_MACHINE_IMAGE_TASK_ID` left; NothingToTest
    when it left none (its build failed)."""
    from ..tc import read_artifact

    environ = os.environ if environ is None else environ
    task = environ.get(MACHINE_TASK_VARIABLE)
    if not task:
        raise CibError(f"{MACHINE_TASK_VARIABLE} is not set: give the machine-image task "
                       "(or --machine-image FILE)")
    data = read_artifact(queue, task, manifest.MACHINE_IMAGE_ARTIFACT)
    if data is None:
        raise NothingToTest(f"task {task} left no {manifest.MACHINE_IMAGE_ARTIFACT} (its build "
                            "failed): there is no image to test")
    return manifest.parse_machine_image(data, f"task {task} {manifest.MACHINE_IMAGE_ARTIFACT}")


def run_smoke_tests(ctx: BuildContext, target: Target, record: manifest.MachineImageRecord,
                    runner: Runner, timeouts: SmokeTestTimeouts) -> manifest.ImageTestRecord:
    """Run the key's smoke tests on the image of `record`, write the test record and log;
    SmokeTestsFailed (after writing them) when a test failed."""
    if record.key != ctx.key.name or record.target != target.id:
        raise CibError(f"the machine-image record is of {record.key} {record.target}, not "
                       f"{ctx.key.name} {target.id}")
    if ctx.digests.machines[target.id] != record.machine_digest:
        raise CibError(f"{record.image_id} was built at machine digest "
                       f"{record.machine_digest[:12]}, not this config's "
                       f"{ctx.digests.machines[target.id][:12]}")
    environment = ctx.fleet.environments.get(ctx.environment)
    tests = ctx.key.image_tests(environment)
    if not tests:
        raise CibError(f"{ctx.key.name} has no smoke tests in "
                       f"{ctx.environment or 'this environment'} (validation.image.tests, or "
                       "the environment's image-tests): there is nothing to run")
    digest = tests_digest(tests)
    ctx.progress.say(f"{len(tests)} smoke test{'s' if len(tests) != 1 else ''} of "
                     f"{ctx.key.name} ({', '.join(t.name for t in tests)}; digest "
                     f"{digest[:12]}) on {record.image_id} {record.image_name}")
    log = runner(ctx, target, record, tests, timeouts)
    ctx.write_artifact(TEST_LOG, log.text)
    results = smoke_test_results(tests, log.text)
    for result in results:
        ctx.progress.say(describe_smoke_test(result))
    tested = manifest.image_test_record(
        record, tests_digest=digest, results=[r.to_json() for r in results],
        test_task_id=ctx.task_id, created=ctx.now())
    ctx.write_artifact("image-test.json", manifest.dumps(tested))
    failed = [r.name for r in results if not r.passed]
    if failed:
        raise SmokeTestsFailed(f"{len(failed)} of {len(results)} smoke tests of "
                               f"{record.image_name} ({target.id}) failed: "
                               f"{', '.join(failed)}; nothing is released or deployed from it")
    return tested


# --- the clouds ---------------------------------------------------------------------------------


def aws_runner(ec2_for: Callable[[str], Any]) -> Runner:
    """Boot an instance from the AMI whose user data runs the tests and stops it; its console
    output."""
    from . import aws_machine

    def run(ctx: BuildContext, target: Target, record: manifest.MachineImageRecord,
            tests: tuple[ImageTest, ...], timeouts: SmokeTestTimeouts) -> CollectedLog:
        ec2 = ec2_for(record.region)
        build = aws_machine.AwsBuild(ec2=ec2, target=target, timeouts=aws_machine.Timeouts(
            interval=timeouts.interval))
        ledger = aws_machine.Ledger(ec2)
        script = smoke_test_script([t.to_json() for t in tests], ctx.key.os_family,
                                   power_off=True)

        with builder_resources(ctx, ledger.held, lambda: aws_machine.clean_up(
                ctx, ledger, build.timeouts)):
            instance = aws_machine.launch(ctx, build, ledger, record.image_id,
                                          f"{record.image_name}-test", script=script)
            ctx.progress.wait(f"the smoke tests to stop {instance}",
                              lambda: ec2.instance_state(instance), done={"stopped"},
                              failed={"terminated", "shutting-down", "missing"},
                              timeout=timeouts.tests, interval=timeouts.interval)
            return CollectedLog(ec2.console_output(instance),
                                (f"the console output of {instance}",))

    return run


def azure_runner(azure: Any) -> Runner:
    """Create a VM from the image and run the tests through its run command; its output."""
    from ..clouds.azure import run_command_output
    from . import azure_machine

    def run(ctx: BuildContext, target: Target, record: manifest.MachineImageRecord,
            tests: tuple[ImageTest, ...], timeouts: SmokeTestTimeouts) -> CollectedLog:
        build = azure_machine.AzureBuild(azure=azure, target=target,
                                         timeouts=azure_machine.Timeouts(
                                             interval=timeouts.interval))
        ledger = azure_machine.Ledger()
        family = ctx.key.os_family
        script = smoke_test_script([t.to_json() for t in tests], family, power_off=False)
        command = "RunPowerShellScript" if family == "windows" else "RunShellScript"

        with builder_resources(ctx, ledger.held,
                               lambda: azure_machine.clean_up(ctx, build, ledger)):
            vm = azure_machine.launch(ctx, build, ledger, {"id": record.image_id},
                                      f"{record.image_name}-test")
            operation = azure.begin_run_command(build.group, vm, command, script.splitlines())
            ctx.progress.say(f"running the smoke tests on {vm} ({command})")
            result = azure_machine.finish(ctx, f"the smoke tests on {vm}", operation,
                                          timeouts.tests, build)
            return CollectedLog(run_command_output(result)[0],
                                (f"the run command's output on {vm}",))

    return run


def google_runner(google: Any) -> Runner:
    """Boot an instance from the image whose startup script runs the tests and powers it off;
    its serial port output (the guest agent's prefix taken off)."""
    from . import google_machine

    def run(ctx: BuildContext, target: Target, record: manifest.MachineImageRecord,
            tests: tuple[ImageTest, ...], timeouts: SmokeTestTimeouts) -> CollectedLog:
        build = google_machine.GoogleBuild(google=google, target=target,
                                           timeouts=google_machine.Timeouts(
                                               interval=timeouts.interval))
        ledger = google_machine.Ledger(build.project, build.zone)
        family = ctx.key.os_family
        script = smoke_test_script([t.to_json() for t in tests], family, power_off=False)
        script += "Stop-Computer -Force\n" if family == "windows" else "poweroff\n"
        image = record.image_id if "/" in record.image_id else \
            google_machine.image_link(build.project, record.image_id)

        with builder_resources(ctx, ledger.held,
                               lambda: google_machine.clean_up(ctx, build, ledger)):
            instance = google_machine.launch(ctx, build, ledger, image,
                                             f"{record.image_name}-test", script=script)
            return google_machine.wait_for_stop(ctx, build, instance,
                                                f"the smoke tests to stop {instance}",
                                                timeouts.tests)

    return run
