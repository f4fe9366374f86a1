"""image_name: deterministic, valid on every cloud, and always carries the digest prefix."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cib_decision.naming import DIGEST_CHARS, MAX_IMAGE_NAME, image_name, pool_id

# GCP's rule, the strictest of the three clouds.
VALID_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DIGEST = hashlib.sha256(b"some image content").hexdigest()
OTHER_DIGEST = hashlib.sha256(b"other image content").hexdigest()

KEYS = [
    "win10-64",
    "ubuntu-2404",
    "win11-64-gpu",
    "win2012",
    "Win10_64.GPU",  # upper case, '_' and '.' are not allowed in image names
    "2012-server",  # a name must start with a letter
    "--edge--",
    "x",
    "w" * 200,  # far longer than any cloud allows
    "win10-64-" + "a" * 60,
    "k" + "-" * 80 + "z",
    # the cut to 63 characters lands right after a '-' (machine, disk, disk with pr1):
    "a" * 49 + "-bbbb",
    "a" * 44 + "-bbbb",
    "a" * 40 + "-bbbb",
]


def assert_valid(name: str) -> None:
    assert VALID_NAME.fullmatch(name), name
    assert len(name) <= MAX_IMAGE_NAME, (len(name), name)


def test_image_name_is_deterministic() -> None:
    assert image_name("win10-64", DIGEST) == image_name("win10-64", DIGEST)
    assert image_name("win10-64", DIGEST, kind="disk", pull_request=7) == image_name(
        "win10-64", DIGEST, kind="disk", pull_request=7)


def test_image_name_has_documented_shape() -> None:
    short = DIGEST[:DIGEST_CHARS]
    assert image_name("win10-64", DIGEST) == f"win10-64-{short}"
    assert image_name("win10-64", DIGEST, kind="disk") == f"win10-64-disk-{short}"
    assert image_name("win10-64", DIGEST, pull_request=42) == f"win10-64-pr42-{short}"
    assert image_name("win10-64", DIGEST, kind="disk", pull_request=42) == (
        f"win10-64-disk-pr42-{short}")


def test_disk_and_machine_images_get_different_names() -> None:
    assert image_name("win10-64", DIGEST, kind="disk") != image_name("win10-64", DIGEST)


def test_pull_request_builds_get_different_names() -> None:
    plain = image_name("win10-64", DIGEST)
    pr1 = image_name("win10-64", DIGEST, pull_request=1)
    pr2 = image_name("win10-64", DIGEST, pull_request=2)
    assert len({plain, pr1, pr2}) == 3
    assert image_name("win10-64", DIGEST, kind="disk", pull_request=1) != pr1


def test_different_digests_give_different_names() -> None:
    assert image_name("win10-64", DIGEST) != image_name("win10-64", OTHER_DIGEST)


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("kind", ["machine", "disk"])
@pytest.mark.parametrize("pull_request", [None, 1, 123456])
def test_image_name_is_valid_and_keeps_digest_prefix(key: str, kind: str,
                                                      pull_request: int | None) -> None:
    name = image_name(key, DIGEST, kind=kind, pull_request=pull_request)
    assert_valid(name)
    assert name.endswith("-" + DIGEST[:DIGEST_CHARS])


def test_long_key_is_shortened_to_the_limit_not_the_digest() -> None:
    name = image_name("w" * 200, DIGEST, kind="disk", pull_request=99)
    assert len(name) == MAX_IMAGE_NAME
    assert name.endswith(f"-disk-pr99-{DIGEST[:DIGEST_CHARS]}")
    assert name.startswith("www")


@pytest.mark.parametrize(("key", "kind", "pull_request"), [
    ("a" * 49 + "-bbbb", "machine", None),
    ("a" * 44 + "-bbbb", "disk", None),
    ("a" * 40 + "-bbbb", "disk", 1),
])
def test_shortened_key_drops_a_trailing_hyphen(key: str, kind: str,
                                               pull_request: int | None) -> None:
    name = image_name(key, DIGEST, kind=kind, pull_request=pull_request)
    assert "--" not in name
    assert name.startswith(key.split("-")[0] + "-")


@settings(max_examples=200, deadline=None, database=None)
@given(key=st.text(max_size=120), kind=st.sampled_from(["machine", "disk"]),
       pull_request=st.one_of(st.none(), st.integers(min_value=1, max_value=10**6)))
def test_image_name_is_valid_for_any_key(key: str, kind: str, pull_request: int | None) -> None:
    name = image_name(key, DIGEST, kind=kind, pull_request=pull_request)
    assert_valid(name)
    assert name.endswith("-" + DIGEST[:DIGEST_CHARS])


@pytest.mark.parametrize("digest", [
    "z" * 64,  # not hex
    DIGEST.upper(),  # hexdigest() is lower case; upper case would make invalid names
    DIGEST[:DIGEST_CHARS - 1],  # too short to keep 12 characters
    "",
    "sha256:" + DIGEST,
    DIGEST[:20] + "-" + DIGEST[21:],
])
def test_image_name_rejects_a_non_hex_digest(digest: str) -> None:
    with pytest.raises(ValueError, match="not a hex digest"):
        image_name("win10-64", digest)


def test_image_name_rejects_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown image kind"):
        image_name("win10-64", DIGEST, kind="snapshot")


def test_pool_id_joins_domain_and_variant() -> None:
    assert pool_id("gecko-t", "win10-64-azure") == "gecko-t/win10-64-azure"
