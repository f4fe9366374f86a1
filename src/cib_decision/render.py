"""Human-readable renderings of reports (rich tables; plain text when not on a terminal)."""

from __future__ import annotations

from typing import TextIO

from rich.console import Console
from rich.table import Table

from .changes import ChangeReport


def _yes_no(flag: bool, yes: str) -> str:
    return yes if flag else "-"


def changes_table(report: ChangeReport, out: TextIO) -> None:
    """Print what must be rebuilt, and which pools change, as two tables."""
    console = Console(file=out, width=160 if not out.isatty() else None)
    console.print(f"changes from {report.base[:12]} to {report.head[:12]}")
    images = Table("key", "image", "rebuild", "digest", "because", box=None, pad_edge=False)
    pools = Table("key", "pool", "update", "because", box=None, pad_edge=False)
    for key in report.keys:
        label = f"{key.key} (removed)" if key.removed else key.key
        images.add_row(label, "disk", _yes_no(key.disk_image.rebuild, "rebuild"),
                       key.disk_image.digest[:12], ", ".join(key.disk_image.because))
        for target in key.targets:
            change = target.machine_image
            images.add_row("", target.target, _yes_no(change.rebuild, "rebuild"),
                           change.digest[:12], ", ".join(change.because))
        for pool in key.pools:
            pools.add_row(label, pool.pool, _yes_no(pool.update, "update"),
                          ", ".join(pool.because))
    console.print(images)
    console.print(pools)
