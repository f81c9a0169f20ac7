"""Network addresses of a distributed search: parsed and checked before anything starts.

keras-tuner's chief serves its oracle over gRPC **without authentication or
encryption**: anyone who reaches the port can read the search space and feed
the oracle results. So the chief listens on the loopback interface unless it
is told an address, and a wildcard address (``0.0.0.0``, ``::``), which would
expose it on every network the machine is on, needs an explicit flag. Across
machines, use a private network or an SSH tunnel (README, "Tuning on several
machines").

Everything here is cheap (no Keras), so a bad address is a one-line
:class:`~analysis.errors.UserError` (exit status 2) before a backend loads.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from analysis.errors import UserError

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Address:
    """A host and a TCP port; ``str()`` gives what gRPC expects."""

    host: str
    port: int

    def __str__(self) -> str:
        # An IPv6 literal needs brackets in front of the port.
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_wildcard(self) -> bool:
        return _ip(self.host) is not None and _ip(self.host).is_unspecified


def _ip(host: str):
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_port(port: int | str, *, what: str, allow_zero: bool = False) -> int:
    """A port number in range; 0 (where allowed) means "any free port"."""
    try:
        number = int(port)
    except (TypeError, ValueError):
        raise UserError(f"{what} {port!r} is not a port number; give a whole number "
                        "from 1 to 65535") from None
    low = 0 if allow_zero else 1
    if not low <= number <= 65535:
        raise UserError(f"{what} {number} is out of range; give a port from {low} to 65535")
    return number


def check_host(host: str, *, what: str) -> str:
    """A literal IP address or a host name this machine can resolve."""
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise UserError(f"{what} has no host; write HOST:PORT, e.g. 127.0.0.1:8000")
    if _ip(host) is None:
        try:
            socket.getaddrinfo(host, None)
        except (socket.gaierror, UnicodeError):
            raise UserError(f"{what}: cannot resolve the host name {host!r}; check the spelling "
                            "or give the chief's IP address") from None
    return host


def parse(text: str, *, what: str = "--chief-address") -> Address:
    """``HOST:PORT`` (``[IPv6]:PORT`` for an IPv6 literal), checked."""
    text = (text or "").strip()
    host, colon, port = text.rpartition(":")
    if not colon or not port:
        raise UserError(f"{what} {text!r} is not HOST:PORT; write e.g. 192.168.1.20:8000")
    if ":" in host and not host.startswith("["):
        raise UserError(f"{what} {text!r}: write an IPv6 address in brackets, e.g. [::1]:8000")
    return Address(check_host(host, what=what), check_port(port, what=f"{what} port"))


def listen_address(host: str | None, port: int | str | None, *,
                   allow_wildcard: bool = False) -> Address:
    """Where the chief listens: loopback unless given; a wildcard only on request.

    Port 0 (the default) lets the operating system pick a free port at bind
    time, which cannot race with another program the way probing first would.
    """
    host = check_host(host, what="--address") if host else LOOPBACK
    address = Address(host, check_port(0 if port is None else port, what="--port",
                                       allow_zero=True))
    if address.is_wildcard and not allow_wildcard:
        raise UserError(
            f"--address {host} would expose the unauthenticated tuning service on every "
            "network of this machine; give this machine's private-network address, use an "
            "SSH tunnel, or pass --allow-wildcard if the network is private")
    return address


def wait_for_chief(address: Address, timeout: float) -> None:
    """Return once a gRPC server answers at ``address``; a one-line error after ``timeout`` s.

    keras-tuner's client waits for a chief for up to an hour on every call
    (keras-team/keras-tuner#990, #957); a worker pointed at the wrong place
    should say so instead.
    """
    import grpc

    channel = grpc.insecure_channel(str(address))
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise UserError(
            f"no tuning chief answered at {address} within {timeout:g} s; start "
            "`python -m analysis tune SEARCH --chief` there first, and check the address, "
            "the port, a firewall or your SSH tunnel") from None
    finally:
        channel.close()
