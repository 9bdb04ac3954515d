"""@secrets on a real Ray, through the CLI: the step sees its secrets in os.environ, the next
task on the same worker does not, and no value is written anywhere: every file of the
datastore and of the Ray session's folder (its logs, the flow folder it shipped), the run's
output, `rayflow dump` and `rayflow show` are searched for the bytes."""

from __future__ import annotations

import hashlib
import os
import secrets as pysecrets
import shutil

import pytest

from rayflow import Flow

pytestmark = pytest.mark.integration

FLOWS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "flows")
INLINE_TOKEN = "inline-3d1f0b7c9e5a42f6"  # as written in secrets_flow.py


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _files_holding(root: str, needles: list[bytes]) -> list[str]:
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            try:
                with open(path, "rb") as fh:
                    data = fh.read()
            except OSError:  # a socket, a file removed meanwhile
                continue
            found += [f"{path}: {n.decode()}" for n in needles if n in data]
    return found


def _session_dir(ray_session) -> str:
    return ray_session._private.worker._global_node.get_session_dir_path()


def test_secrets_reach_the_step_only(cli, datastore, tmp_path, ray_session, global_namespace):
    file_token, env_token = (f"{kind}-{pysecrets.token_hex(16)}" for kind in ("file", "env"))
    flow = str(tmp_path / "secrets_flow.py")
    shutil.copy(os.path.join(FLOWS, "secrets_flow.py"), flow)
    (tmp_path / "secrets.env").write_text(f"RF_FILE_TOKEN={file_token}\n")
    proc = cli("run", flow, cwd=str(tmp_path), env={"RF_ENV_TOKEN": env_token}, check=0)
    output = proc.stdout + proc.stderr
    notes = [line for line in output.splitlines() if "deployed to a scheduler" in line]
    assert notes == ["Note: @schedule(cron='0 3 * * *') takes effect only when the flow is "
                     "deployed to a scheduler, which rayflow does not do yet: this run starts "
                     "now, once."]

    run = Flow("SecretsFlow", datastore=datastore).latest_run
    start = run["start"].task.data
    assert start.seen == {"RF_ENV_TOKEN": _sha(env_token), "RF_FILE_TOKEN": _sha(file_token),
                          "RF_INLINE_TOKEN": _sha(INLINE_TOKEN)}
    assert start.parallel is False and start.start_type == "foreach"
    join = run["join"].task.data
    # The foreach's tasks and the end step: none sees a secret of start's, those that ran in
    # start's own worker process included.
    unseen = {"RF_ENV_TOKEN": None, "RF_FILE_TOKEN": None, "RF_INLINE_TOKEN": None}
    assert join.body_seen == [unseen] * 8 and join.inside
    assert run["end"].task.data.seen_end == unseen
    assert start.pid in join.body_pids + [run["end"].task.data.end_pid], \
        "no later task ran in start's worker: the test did not check a reused worker"

    from rayflow.cards import get_cards

    assert len(get_cards(run["start"].task)) == 1  # the card is in the datastore searched below
    needles = [t.encode() for t in (file_token, env_token, INLINE_TOKEN)]
    assert _files_holding(datastore, needles) == []
    # An inline secret is written in the flow's code: the copy of the flow folder Ray shipped
    # to its workers has it there, and only there.
    assert [f for f in _files_holding(_session_dir(ray_session), needles)
            if not f.endswith(f"/secrets_flow.py: {INLINE_TOKEN}")] == []
    shown = [output, cli("dump", f"{run.pathspec}/start", "--json", "--max-chars", "1000000",
                         check=0).stdout,
             cli("show", flow, check=0).stdout, cli("show", flow, "--json", check=0).stdout]
    assert not [n for n in needles for text in shown if n.decode() in text]
    graph_info = run["start"].task["_graph_info"].data
    secrets_info = [d for d in graph_info["steps"]["start"]["decorators"]
                    if d["name"] == "secrets"]
    assert secrets_info[0]["attributes"]["sources"] == [
        "env.RF_ENV_TOKEN", {"type": "file", "id": "secrets.env"},
        {"type": "inline", "id": "demo"}]
    assert "@schedule(cron='0 3 * * *')" in shown[2]


def test_a_failing_provider_is_one_message_without_the_value(cli, tmp_path):
    token = f"tok-{pysecrets.token_hex(16)}"
    flow = str(tmp_path / "secrets_flow.py")
    shutil.copy(os.path.join(FLOWS, "secrets_flow.py"), flow)
    # Read on the driver, and refused there before Ray is joined: a line without a value.
    (tmp_path / "secrets.env").write_text(f"RF_FILE_TOKEN={token}\nBROKEN\n")
    proc = cli("run", flow, cwd=str(tmp_path), env={"RF_ENV_TOKEN": "x"}, check=1)
    assert token not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
    assert "Step 'start': @secrets source 'secrets.env (file)' could not be read: " \
           "ValueError:" in proc.stderr and "BROKEN has no '=value'" in proc.stderr
    assert "Joining" not in proc.stderr and "Running SecretsFlow" not in proc.stderr

    # Read in the task, by a provider of the flow's own: the step fails with one message.
    proc = cli("run", os.path.join(FLOWS, "secrets_failing_flow.py"), check=1)
    message = ("Step 'load': @secrets source 'db_password (down)' could not be read: "
               "ConnectionError: backend for db_password is down")
    assert message in proc.stderr and "Traceback" not in proc.stderr
    # Besides the run's final message, only the task's own log line (forwarded live, as for
    # every failing task) says it.
    lines = [line for line in (proc.stdout + proc.stderr).splitlines()
             if "backend for db_password is down" in line]
    assert len(lines) <= 2 and all(line.startswith("Step failed: ") or "/load/" in
                                   line.split("] ")[0] for line in lines), lines
    assert sum(line.startswith("Step failed: ") for line in lines) == 1, lines
