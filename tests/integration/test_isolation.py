"""Task isolation on Ray: batched splits and static branches change inherited values in place
(tests/flows/isolation_flow.py), and every task still sees them as its parent left them."""

from __future__ import annotations

import pytest

from rayflow import Run
from rayflow.datastore import FlowDataStore

pytestmark = pytest.mark.integration


def test_in_place_changes_never_leak_between_tasks(run_flow, datastore):
    s = run_flow("isolation_flow.py", {"width": 400})
    assert s.successful, s.failures[0].error.describe() if s.failures else ""
    assert Run(s.pathspec, datastore=datastore)["join"].task.data.checked == 400
    store = FlowDataStore.from_url(datastore, "IsolationFlow")
    batches = [store.bundles.read(s.run_id, "work", n)
               for n in store.bundles.names(s.run_id, "work")]
    assert batches and max(len(b) for b in batches) > 10, "the splits did not run in batches"
