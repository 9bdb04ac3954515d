"""rayflow: Metaflow-style flows, executed on Ray.

Change `from metaflow import ...` to `from rayflow import ...` and the flow runs on Ray: every
step a Ray task sized by @resources, a foreach a burst of parallel tasks, artifacts passed
through Ray's object store and checkpointed to a local or S3 datastore.
"""

from .client import (
                     DataArtifact,
                     Flow,
                     Metaflow,
                     Run,
                     Step,
                     Task,
                     default_metadata,
                     default_namespace,
                     get_metadata,
                     get_namespace,
                     inspect_spin,
                     metadata,
                     namespace,
)
from .config import Config, ConfigValue, config_expr
from .current import current
from .datatools import S3
from .decorators import (
                     actor_pool,
                     batch,
                     card,
                     catch,
                     conda,
                     conda_base,
                     environment,
                     kubernetes,
                     pypi,
                     pypi_base,
                     resources,
                     retry,
                     schedule,
                     secrets,
                     timeout,
                     trigger,
                     trigger_on_finish,
)
from .exceptions import MetaflowNotFound, RayflowException
from .exit_hook import exit_hook
from .flowspec import FlowSpec, StepException, step
from .metaflow_profile import profile
from .multicore_utils import parallel_imap_unordered, parallel_map
from .parallel import parallel, pytorch_parallel
from .parameters import IncludeFile, JSONType, JSONTypeClass, Parameter
from .project import project
from .runner import ExecutingRun, NBRunner, Runner
from .unsupported import DeployedFlow, Deployer, NBDeployer
from .user_decorators.user_flow_decorator import FlowMutator
from .user_decorators.user_step_decorator import (
                     USER_SKIP_STEP,
                     StepMutator,
                     UserStepDecorator,
                     user_step_decorator,
)

__version__ = "0.1.0"


def __getattr__(name):
    # Metaflow's modules that flows reach as attributes (`metaflow.metaflow_config.X`), imported
    # on first use: metaflow_config reads the environment when it is imported, as in Metaflow.
    if name in ("metaflow_config", "unbounded_foreach", "includefile", "cards", "integrations"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FlowSpec", "step", "Parameter", "IncludeFile", "JSONType", "current", "resources", "retry",
    "catch", "timeout", "environment", "kubernetes", "batch", "card", "conda", "pypi",
    "secrets", "conda_base", "pypi_base", "schedule", "trigger", "trigger_on_finish",
    "Flow", "Metaflow", "Run", "Step", "Task", "DataArtifact", "namespace", "get_namespace",
    "default_namespace", "metadata", "get_metadata", "default_metadata", "inspect_spin",
    "MetaflowNotFound",
    "RayflowException", "StepException", "Runner", "NBRunner", "ExecutingRun",
    "project", "Config", "ConfigValue", "config_expr", "actor_pool",
    "FlowMutator", "StepMutator", "UserStepDecorator", "user_step_decorator", "USER_SKIP_STEP",
    "S3", "profile",
    "exit_hook", "parallel", "Deployer", "NBDeployer", "DeployedFlow", "metaflow_config",
    "unbounded_foreach", "pytorch_parallel", "JSONTypeClass", "parallel_map",
    "parallel_imap_unordered",
]
