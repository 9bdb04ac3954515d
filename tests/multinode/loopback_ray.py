"""The `ray` command, held to 127.0.0.1, for a *worker* node started with `ray start`.

A worker's `ray start` needs RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1, and with it Ray swaps a
loopback address for the machine's own address, so the node would talk to the head over the
machine's network address. The tests keep every connection on 127.0.0.1, so this wrapper makes
Ray keep the address it is given. Usage: python loopback_ray.py start --address=127.0.0.1:P ...
"""
import sys

import ray._private.services as services

services.resolve_ip_for_localhost = lambda host: host
services.get_node_ip_address = lambda address=None: "127.0.0.1"

from ray.scripts.scripts import main  # noqa: E402

sys.argv = ["ray", *sys.argv[1:]]
main()
