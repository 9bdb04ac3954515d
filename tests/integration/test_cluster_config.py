"""cluster.yaml passes Ray's own cluster-launcher validation, as `ray up` would run it before
touching any cloud, and so does its commented on-premises variant. No cloud is contacted.

Ray's schema leaves each node type's `node_config` free-form (it is whatever the cloud's API
takes), so the AWS node configs are also checked against the EC2 RunInstances request shape
that botocore ships: a misspelt key there would otherwise surface only at launch time.
"""

from __future__ import annotations

import copy
import os
import re

import pytest

yaml = pytest.importorskip("yaml")
pytest.importorskip("jsonschema", reason="Ray's config validation needs jsonschema")

import ray
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER_YAML = os.path.join(ROOT, "cluster.yaml")
LOCAL_BEGIN = "# --- local provider variant: BEGIN"
LOCAL_END = "# --- local provider variant: END"


def load_aws() -> dict:
    with open(CLUSTER_YAML) as fh:
        return yaml.safe_load(fh)


def load_local_variant() -> dict:
    """The commented block at the end of cluster.yaml, uncommented as its instructions say."""
    with open(CLUSTER_YAML) as fh:
        text = fh.read()
    block = text.split(LOCAL_BEGIN, 1)[1].split(LOCAL_END, 1)[0]
    lines = block.splitlines()[1:]  # the rest of the BEGIN line
    yaml_lines = [ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in lines]
    body = "\n".join(yaml_lines)
    # The prose before the config ends at the first top-level key.
    body = body[body.index("cluster_name:"):]
    return yaml.safe_load(body)


def ray_validates(config: dict) -> dict:
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def test_aws_config_passes_ray_validation():
    config = ray_validates(load_aws())
    assert config["provider"]["type"] == "aws"


def test_aws_node_types_head_cpu_and_gpu():
    config = ray_validates(load_aws())
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    workers = {name: t for name, t in types.items() if name != config["head_node_type"]}
    gpu = [t for t in workers.values() if t["resources"].get("GPU", 0) >= 1]
    cpu = [t for t in workers.values() if not t["resources"].get("GPU")]
    assert head is not None and cpu and gpu
    for node_type in gpu:
        assert any(k.startswith("accelerator_type:") for k in node_type["resources"]), \
            "a GPU worker type must name its accelerator type, e.g. accelerator_type:T4"
    assert all(t["max_workers"] <= config["max_workers"] for t in workers.values())


def test_aws_node_configs_are_valid_ec2_requests():
    """Each node_config must be a valid EC2 RunInstances request (Ray adds the counts, the
    image and the subnets at launch)."""
    botocore_session = pytest.importorskip("botocore.session")
    from botocore.validate import ParamValidator

    shape = botocore_session.get_session().get_service_model("ec2") \
        .operation_model("RunInstances").input_shape
    def problems(node_config: dict) -> str:
        report = ParamValidator().validate({"MinCount": 1, "MaxCount": 1, **node_config}, shape)
        return report.generate_report() if report.has_errors() else ""

    for name, node_type in load_aws()["available_node_types"].items():
        assert not problems(node_type["node_config"]), f"node type {name}: " + \
            problems(node_type["node_config"])
    assert "InstanceTyp" in problems({"InstanceTyp": "m5.large"})  # the check has teeth


def test_setup_installs_rayflow_and_exports_the_s3_datastore():
    config = load_aws()
    commands = "\n".join(config["setup_commands"])
    assert re.search(r"pip install .*rayflow\[s3\]", commands)
    assert re.search(r"export RAYFLOW_DATASTORE=s3://", commands)
    assert "export RAY_AUTH_MODE=token" in commands
    # The checkout that setup installs is the one `ray up` copies from.
    assert config["file_mounts"]["~/rayflow"] == "."


def test_images_run_the_ray_version_rayflow_is_tested_with():
    """A driver and a cluster on different Ray versions cannot talk to each other."""
    config = load_aws()
    images = [config["docker"]["image"]] + [
        t["docker"]["worker_image"] for t in config["available_node_types"].values()
        if "docker" in t]
    for image in images:
        assert image.startswith(f"rayproject/ray:{ray.__version__}-"), image


def test_local_provider_variant_passes_ray_validation():
    variant = load_local_variant()
    assert variant["provider"]["type"] == "local"
    assert variant["provider"]["head_ip"] and variant["provider"]["worker_ips"]
    config = ray_validates(variant)
    assert any("rayflow[s3]" in c for c in config["setup_commands"])


@pytest.mark.parametrize("break_it", [
    lambda c: c.update(max_worker=3),                                          # misspelt key
    lambda c: c["available_node_types"]["gpu_worker"].update(resource={"GPU": 1}),
    lambda c: c["available_node_types"]["gpu_worker"]["resources"].update(GPU=0.5),
    lambda c: c["docker"].update(imgae="rayproject/ray"),
])
def test_a_broken_key_fails_validation(break_it):
    """The check has teeth: the kind of slip a hand edit makes is refused."""
    import jsonschema

    config = load_aws()
    break_it(config)
    with pytest.raises(jsonschema.ValidationError):
        ray_validates(config)
