"""The vocabulary of the directive tests (test helper): keys, pools, regions and environments
a commit message's directives may name."""

from __future__ import annotations

from cib_decision.directives import Vocabulary

VOCAB = Vocabulary(
    keys=("win10-64", "win11-64", "win11-64-gpu", "win2022-64", "ubuntu-2404"),
    pools=("gecko-t/win10-64-azure", "gecko-t/win11-64-azure", "gecko-1/win2022-64-aws"),
    regions=("centralus", "eastus", "eastus2", "northcentralus", "us-east-1", "westus2"),
    environments=("production", "staging"),
)
