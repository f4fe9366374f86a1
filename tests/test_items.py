"""The items of cib's kinds are typed: each `cib-items` type has a schema, every item the
bundled fleet gives validates against it, and a kind's transforms refuse an item that does
not, naming the kind and the item (taskgraph's `add_validate`)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from taskgraph.util.schema import SchemaValidationError

from cib_decision.digests import fleet_digests
from cib_decision.directives import Directives
from cib_decision.taskgraph.items import ITEMS
from cib_decision.taskgraph.loader import loader
from cib_decision.taskgraph.transforms import machine_image

from .graphs import FLEET, TASKCLUSTER

DIGESTS = fleet_digests(FLEET)
PARAMETERS = ({"cib_environment": "production", "cib_pull_request": 0},
              {"cib_environment": "staging", "cib_pull_request": 17},
              {"cib_environment": "production", "cib_pull_request": 0,
               "cib_promote": {"key": "win2022-64", "from": "staging", "to": "production"}})


@pytest.mark.parametrize("items", sorted(ITEMS))
def test_every_item_of_the_bundled_fleet_validates_against_its_type(items):
    schema, items_of = ITEMS[items]
    given = [item for params in PARAMETERS for item in items_of(FLEET, DIGESTS, params)]
    assert given, f"the bundled fleet gives no {items} item"
    for item in given:
        schema.validate(item)


def test_a_kind_refuses_an_item_its_type_does_not_have_naming_the_kind_and_item():
    (item, *_) = ITEMS["machine-images"][1](FLEET, DIGESTS, PARAMETERS[0])
    config = SimpleNamespace(kind="machine-image", graph_config={},
                             params={**PARAMETERS[0], "cib_directives": Directives().to_json()})
    broken = {**item, "disk-image": "yes", "surprise": 1}
    with pytest.raises(SchemaValidationError, match=f"machine-image kind task "
                       f"'{item['name']}'"):
        list(machine_image.transforms(config, [broken]))


def test_an_unknown_items_type_in_a_kind_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="unknown cib-items 'tasks'; choose from task-env, "
                       "clouds, config"):
        list(loader("x", f"{TASKCLUSTER}/kinds/x", {"cib-items": "tasks"}, {}, []))
