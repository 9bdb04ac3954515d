"""The flagship identity-resolution flow, end to end on a real Ray with a small dataset."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from rayflow import Run, namespace

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLOW = os.path.join(ROOT, "examples", "identity_resolution", "flow.py")


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("records")
    subprocess.run([sys.executable, "-m", "examples.identity_resolution.generate",
                    "--records", "4000", "--seed", "7", "--out", str(out)],
                   cwd=ROOT, check=True, capture_output=True, timeout=120)
    return str(out)


@pytest.mark.parametrize("store", ["local", "s3"])
def test_identity_resolution_flow(run_flow, datastore, records_dir, tmp_path, store, request):
    namespace(None)
    url = request.getfixturevalue("s3_url") if store == "s3" else datastore
    output = str(tmp_path / "entities.parquet")
    s = run_flow(FLOW, {"data": records_dir, "partitions": 4, "output": output},
                 datastore_url=url)
    assert s.successful, s.failures
    run = Run(s.pathspec, datastore=url)
    metrics = run.data.metrics
    assert metrics["records"] == 4000 and metrics["f1"] >= 0.95, metrics
    table = pq.read_table(output)
    assert {"record_id", "entity_id"} <= set(table.column_names)
    assert table.num_rows == 4000
    assert len(list(run["match"])) == 4
    assert type(run["match"].task.data.pairs).__name__ == "Table"
