"""The consumer group each event_driven workload gets from the daemon."""

from __future__ import annotations

import re

from gxo.daemon.lifecycles import consumer_group


def test_one_group_per_playbook_and_workload():
    a = consumer_group(None, "orders", "ingest")
    assert a == consumer_group(None, "orders", "ingest")  # stable across restarts
    assert a != consumer_group(None, "orders", "audit")  # two workloads never split events
    assert a != consumer_group(None, "billing", "ingest")  # nor same-named workloads
    assert a != consumer_group("eu", "orders", "ingest")  # a fleet has its own


def test_names_only_use_characters_every_broker_accepts():
    name = consumer_group("fleet.one", "my playbook/v2+#*>", "w")
    assert re.fullmatch(r"[A-Za-z0-9_-]+", name)
