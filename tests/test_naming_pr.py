"""Per-pull-request pool ids follow worker-manager's rules for any pool and PR number."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cib_decision.config.load import WORKER_POOL_ID
from cib_decision.naming import PR_POOL_DOMAIN, pr_pool_id


def test_a_short_pool_keeps_its_whole_name():
    assert pr_pool_id("gecko-t/win10-64-azure", 17) == "cib-pr/gecko-t-win10-64-azure-pr17"


def test_a_long_pool_is_shortened_deterministically_and_stays_distinct():
    a = pr_pool_id("gecko-t/win11-64-2009-alpha-with-a-long-variant", 12345)
    b = pr_pool_id("gecko-t/win11-64-2009-alpha-with-a-long-variant-2", 12345)
    assert a == pr_pool_id("gecko-t/win11-64-2009-alpha-with-a-long-variant", 12345)
    assert a != b
    assert len(a.split("/")[1]) <= 38 and a.endswith("-pr12345")


def test_a_pull_request_number_is_required():
    with pytest.raises(ValueError):
        pr_pool_id("gecko-t/x", 0)


@given(domain=st.from_regex(r"[a-zA-Z0-9_-]{1,38}", fullmatch=True),
       variant=st.from_regex(r"[a-z]([-a-z0-9]{0,36}[a-z0-9])?", fullmatch=True),
       number=st.integers(min_value=1, max_value=10**7))
def test_every_pr_pool_id_is_a_valid_worker_pool_id(domain, variant, number):
    result = pr_pool_id(f"{domain}/{variant}", number)
    assert WORKER_POOL_ID.match(result), result
    assert result.startswith(f"{PR_POOL_DOMAIN}/")
    assert re.search(rf"-pr{number}$", result)
