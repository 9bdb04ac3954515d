"""One datastore resolver (rayflow/datastore/resolve.py) for the CLI, the run loop, the workers
and the client: every spelling names the same datastore wherever it is given."""

from __future__ import annotations

import os

import pytest

from cli.common import _datastore as cli_datastore
from rayflow import get_metadata, metadata
from rayflow.client import datastores as client_datastores
from rayflow.datastore import FlowDataStore, get_storage, resolve_datastore_url
from rayflow.exceptions import DataStoreError

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "examples")


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder holding `.rayflow`, with the working folder two levels inside it."""
    monkeypatch.delenv("RAYFLOW_DATASTORE", raising=False)
    proj = tmp_path / "project"
    (proj / ".rayflow").mkdir(parents=True)
    (proj / "src" / "pkg").mkdir(parents=True)
    monkeypatch.chdir(proj / "src" / "pkg")
    yield proj
    client_datastores.default_metadata()


def _everywhere(spec: str | None) -> set[str]:
    """What each part makes of `spec`: the CLI, the run loop and workers (a storage's root),
    and the client (`metadata`, or its default when `spec` is None)."""
    seen = {resolve_datastore_url(spec), cli_datastore(spec),
            FlowDataStore.from_url(spec, "F").url if spec else FlowDataStore.from_url(
                resolve_datastore_url(None), "F").url}
    if spec:
        seen.add(client_datastores.resolve_datastore_url(spec))
        metadata(spec)
    else:
        client_datastores.default_metadata()
    seen.add(client_datastores.current_datastore_url())
    return seen


def test_local_is_the_nearest_rayflow_folder(project):
    assert _everywhere("local") == {str(project / ".rayflow")}
    assert _everywhere(None) == {str(project / ".rayflow")}
    assert _everywhere("") == {str(project / ".rayflow")}


def test_local_without_a_rayflow_folder_is_one_under_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("RAYFLOW_DATASTORE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert _everywhere("local") == {str(tmp_path / ".rayflow")}
    assert not (tmp_path / ".rayflow").exists()  # resolving creates nothing
    client_datastores.default_metadata()


def test_a_relative_path_is_taken_from_the_working_folder(project):
    assert _everywhere("store") == {str(project / "src" / "pkg" / "store")}
    assert _everywhere("../../runs/") == {str(project / "runs")}
    assert _everywhere("./local") == {str(project / "src" / "pkg" / "local")}


def test_a_folder_holding_rayflow_means_that_rayflow(project):
    want = {str(project / ".rayflow")}
    assert _everywhere(str(project)) == want
    assert _everywhere("../..") == want
    assert _everywhere(f"local@{project}") == want
    assert _everywhere(f"file://{project}") == want
    assert _everywhere(str(project / ".rayflow")) == want
    assert get_metadata() == f"local@{project / '.rayflow'}"


def test_s3_urls(project):
    assert _everywhere("s3://bucket/prefix/") == {"s3://bucket/prefix"}
    assert _everywhere("s3@s3://bucket/prefix") == {"s3://bucket/prefix"}
    assert resolve_datastore_url("S3://bucket/p/") == "S3://bucket/p"
    assert resolve_datastore_url("gs://bucket/p/") == "gs://bucket/p/"  # another backend's


def test_the_environment_variable(project, monkeypatch):
    monkeypatch.setenv("RAYFLOW_DATASTORE", "local")  # was ./local for the client and storage
    assert _everywhere(None) == {str(project / ".rayflow")}
    monkeypatch.setenv("RAYFLOW_DATASTORE", "elsewhere")
    assert _everywhere(None) == {str(project / "src" / "pkg" / "elsewhere")}
    monkeypatch.setenv("RAYFLOW_DATASTORE", str(project))
    assert _everywhere(None) == {str(project / ".rayflow")}
    monkeypatch.setenv("RAYFLOW_DATASTORE", "s3://bucket/from-env/")
    assert _everywhere(None) == {"s3://bucket/from-env"}
    # An explicit datastore wins over the variable.
    assert _everywhere("local") == {str(project / ".rayflow")}


def test_a_resolved_url_resolves_to_itself(project):
    for spec in ("local", "store", str(project), "s3@s3://b/p/", "file:///tmp/x"):
        once = resolve_datastore_url(spec)
        assert resolve_datastore_url(once) == once
        assert get_storage(once).url == once


def test_bad_spellings_are_one_message(project):
    with pytest.raises(DataStoreError, match="path is empty"):
        resolve_datastore_url("local@")
    with pytest.raises(DataStoreError, match="not a folder or a URL"):
        resolve_datastore_url(42)
    with pytest.raises(ValueError):
        metadata("")


def test_a_run_and_the_client_find_the_same_folder(project):
    """`rayflow run --datastore D` then the client with metadata(D): one datastore, even when
    D is a project folder holding .rayflow (the run used to write into D itself)."""
    from rayflow import Flow, namespace
    from rayflow.parameters import resolve_parameters
    from rayflow.runtime.flowfile import load_flow
    from rayflow.runtime.run_loop import RunLoop, RunOptions

    loaded = load_flow(os.path.join(EXAMPLES, "hello.py"))
    options = RunOptions(datastore_url=cli_datastore(str(project)), executor="inline",
                         progress=False)
    summary = RunLoop(loaded, resolve_parameters(loaded.cls, {}), options).run()
    assert summary.successful and summary.datastore == str(project / ".rayflow")
    metadata(str(project))
    namespace(None)
    try:
        assert Flow(loaded.name).latest_run.id == summary.run_id
    finally:
        from rayflow import default_namespace

        default_namespace()
