"""The digests of the bundled fleet, pinned. A digest is what decides whether an image is built
again: a change of code that moves one rebuilds every image of every user at their next push.
When this test fails:

- you changed `config/` on purpose: the new digests are right; update PINS below;
- you changed code (digests.py, the config model, forms.py, yamlsrc.py): that must not move a
  digest by accident. If it must, bump `DIGEST_VERSION` in digests.py in the same change (so
  that the rebuild is deliberate and visible) and update PINS.
"""

from __future__ import annotations

from cib_decision.config import DirectorySource, load_fleet
from cib_decision.digests import DIGEST_VERSION, fleet_digests

from .conftest import CONFIG_DIR

PINS: dict[str, tuple[str, dict[str, str]]] = {
    "ubuntu-2404": (
        "0cd480c0cfa63c6be0ad47f1c932ea4550d2484e74dcbd0dcd3d7506f27223fe",
        {
            "amazon/us-east-1":
                "b9b8f8f9a1a6d83d3fabcb2792e0be1b339b38a41e95175f5f7fcbe5cd03f047",
            "google/us-central1":
                "f9da25b1312dad6d2b47f373a2cb424113139d123ff61eafddbc12efeec8ebad",
        }),
    "win10-64": (
        "ece6c2db809583dfbde5834228b2a334611a18aac00a0a97314c5fa1f3e2e374",
        {
            "azure/centralus":
                "81968afc9c90f79c5466572aa9512d147f0c48bee243fbc00817b9c55209abda",
            "azure/eastus2":
                "81968afc9c90f79c5466572aa9512d147f0c48bee243fbc00817b9c55209abda",
            "azure/westus2":
                "81968afc9c90f79c5466572aa9512d147f0c48bee243fbc00817b9c55209abda",
        }),
    "win11-64": (
        "79fa84cd493549572610dbafa6d08b5125e2c4d2613262ae22350e826f322a15",
        {
            "azure/centralus":
                "e0c05bb855de0ca86b83fbcacdfb2541ec92796670ff10323de96a4dd651bfb9",
            "azure/eastus":
                "e0c05bb855de0ca86b83fbcacdfb2541ec92796670ff10323de96a4dd651bfb9",
            "azure/northeurope":
                "e0c05bb855de0ca86b83fbcacdfb2541ec92796670ff10323de96a4dd651bfb9",
            "azure/westeurope":
                "e0c05bb855de0ca86b83fbcacdfb2541ec92796670ff10323de96a4dd651bfb9",
        }),
    "win11-64-gpu": (
        "6dd9d43fbdcce1ef56c97cd42ad82dce6ccb3a9da2d062908cbc6ea55a469e85",
        {
            "azure/eastus":
                "c75b55bbb76210adf8e57f86190e82e51c3d4c1da759f6e1cff796208c47945d",
            "azure/westus2":
                "c75b55bbb76210adf8e57f86190e82e51c3d4c1da759f6e1cff796208c47945d",
        }),
    "win2022-64": (
        "3cc612ea11262f480ea45d642e39f69f998ced16fa98bdfefccaf46323af0c3b",
        {
            "amazon/us-east-1":
                "384890705225c467a4d2bcaa5dfb3cc73721448761342cb849f6359bb3164fe0",
            "amazon/us-west-2":
                "384890705225c467a4d2bcaa5dfb3cc73721448761342cb849f6359bb3164fe0",
        }),
}


def test_digest_version_is_the_one_the_pins_were_made_with():
    assert DIGEST_VERSION == 1


def test_the_bundled_fleets_digests_are_the_pinned_ones():
    digests = fleet_digests(load_fleet(DirectorySource(CONFIG_DIR)))
    found = {name: (d.disk, dict(d.machines)) for name, d in digests.items()}
    assert found == PINS
