"""A Ray address checked before `ray.init` is handed it.

`ray.init(address=...)` to a host where no Ray listens retries for many minutes and then
raises a raw traceback; a `ray://` address gives a raw ConnectionError after 30 s. A run asked
to join a cluster first opens a TCP connection to the address (a few seconds at most,
RAYFLOW_CONNECT_TIMEOUT_S, `settings.py`), so a wrong or stopped cluster is one message at once.

Ray also rewrites a loopback address (127.0.0.1, localhost) to the machine's own address,
where a Ray serving this machine alone (`rayflow up`'s, or `ray start --node-ip-address
127.0.0.1`) does not listen. So an address on loopback is joined as that Ray is: the warm Ray
of `rayflow up` with its token, and another Ray found only on loopback in Ray's
single-machine mode.

It must never start Ray, and imports ray only to tell it about the single-machine mode.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from .. import settings
from ..exceptions import RayflowException

GCS_PORT = 6379       # Ray's default for host without a port
CLIENT_PORT = 10001   # Ray Client's default for ray://host


class RayAddressError(RayflowException):
    headline = "Cannot join Ray"


@dataclass(frozen=True)
class RayTarget:
    address: str   # as the user gave it
    scheme: str    # "" (a cluster's GCS, host:port) or "ray" (Ray Client)
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def connect_timeout() -> float:
    return max(0.1, float(settings.CONNECT_TIMEOUT_S.get()))


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse(address: str) -> RayTarget | None:
    """The host and port an address names; None for Ray's own words ("auto", "local")."""
    address = address.strip()
    if address in ("auto", "local"):
        return None
    scheme, sep, _ = address.partition("://")
    if sep and scheme != "ray":
        raise RayAddressError(
            f"--address {address!r} is not a Ray address: give host:port (a cluster's head, "
            f"e.g. 10.0.0.5:6379) or ray://host:port (Ray Client).")
    parts = urlsplit(address if sep else f"//{address}")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if not parts.hostname or port == -1 or (port is not None and not 0 < port < 65536):
        raise RayAddressError(
            f"--address {address!r} names no host and port: give host:port (e.g. "
            f"10.0.0.5:6379) or ray://host:port.")
    default = CLIENT_PORT if sep else GCS_PORT
    return RayTarget(address, "ray" if sep else "", parts.hostname, port or default)


# The start of every HTTP/2 connection (RFC 9113, 3.4), then an empty SETTINGS frame. Ray's
# servers speak gRPC, so HTTP/2: they answer with a SETTINGS frame of their own (type 4).
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
_SETTINGS = 4


def _speaks_http2(sock: socket.socket) -> str | None:
    """None when the server at the other end of `sock` answers as an HTTP/2 (gRPC) server
    does, else what it did: a port that accepts but is not Ray's makes `ray.init` wait for
    many minutes."""
    try:
        sock.sendall(_PREFACE)
        head = b""
        while len(head) < 9:
            chunk = sock.recv(9 - len(head))
            if not chunk:
                break
            head += chunk
    except TimeoutError:
        return "it accepts connections but does not answer as Ray's servers do"
    except OSError as exc:
        return f"it accepts connections but then {exc.strerror or exc}"
    if len(head) == 9 and head[3] == _SETTINGS:
        return None
    if head.startswith(b"HTTP/"):
        return "an HTTP/1 server answers there, not Ray's"
    return "it accepts connections but does not answer as Ray's servers do"


def _refusal(host: str, port: int, timeout: float) -> str | None:
    """None when a server that speaks as Ray's do answers at host:port, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            return _speaks_http2(sock)
    except socket.gaierror as exc:
        return f"the host name {host!r} does not resolve ({exc.strerror})"
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except ConnectionRefusedError:
        return f"nothing listens on port {port} there"
    except OSError as exc:
        return exc.strerror or str(exc)


def check(address: str) -> RayTarget | None:
    """The target of `address`, once something answers there; one message when nothing does,
    within the connect timeout."""
    target = parse(address)
    if target is None:
        return None
    why = _refusal(target.host, target.port, connect_timeout())
    if why is not None:
        what = "Ray Client server" if target.scheme else "Ray cluster"
        raise RayAddressError(
            f"No {what} answers at {address} ({why}). Start Ray there (`ray start --head` on "
            f"that machine, or `rayflow up` for one on this machine), or correct --address "
            f"(or RAY_ADDRESS).")
    return target


def _own_address() -> str | None:
    """The address this machine reaches others from (what Ray puts in place of loopback)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("10.255.255.255", 1))  # no packet is sent: UDP only picks a route
            ip = sock.getsockname()[0]
    except OSError:
        return None
    return None if is_loopback(ip) else ip


def serves_loopback_only(target: RayTarget) -> bool:
    """A loopback address whose Ray cannot be reached at this machine's own address: it is
    joined in Ray's single-machine mode (Ray's rewrite would miss it)."""
    if target.scheme or not target.loopback:
        return False
    own = _own_address()
    return own is None or _refusal(own, target.port, min(1.0, connect_timeout())) is not None


def join_failed(target: RayTarget | str, exc: BaseException) -> RayAddressError:
    """The one message for a `ray.init` that was refused after the address answered."""
    address = target.address if isinstance(target, RayTarget) else target
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return RayAddressError(
        f"Something answers at {address}, but joining it as a Ray cluster failed: {text}. "
        f"Check that it is a Ray head's address (host:port, `ray status` there shows it) and "
        f"that this machine runs the same Ray and Python versions.")
