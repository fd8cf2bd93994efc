"""Egress control: which addresses the fetcher may connect to, and the connections that enforce it.

Every TCP connection the fetcher opens, for the first request and for every redirect hop, goes through
:class:`GuardedBackend`. It resolves the host itself and connects to the vetted IP literal, so the
address checked is the address used (no DNS-rebinding gap). Loopback, private, link-local, CGNAT,
multicast, reserved and similar addresses are refused unless they lie in one of
``Settings.allowed_networks``; cloud metadata addresses are refused unless listed there one by one.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressCheck = Callable[[IPAddress], bool]


class EgressRefused(Exception):
    """Raised by :class:`GuardedBackend` instead of opening a connection it must not open."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# IPv4 ranges that are not publicly routable (IANA special-purpose registry). Listed explicitly rather
# than taken from ipaddress.is_global, whose answers have changed between Python releases.
_NON_PUBLIC_V4 = tuple(
    ipaddress.IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network", including the unspecified address 0.0.0.0
        "10.0.0.0/8",  # RFC 1918
        "100.64.0.0/10",  # carrier-grade NAT (RFC 6598)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, home of cloud metadata services (169.254.169.254)
        "172.16.0.0/12",  # RFC 1918
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation (TEST-NET-1)
        "192.88.99.0/24",  # 6to4 relay anycast, deprecated
        "192.168.0.0/16",  # RFC 1918
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation (TEST-NET-2)
        "203.0.113.0/24",  # documentation (TEST-NET-3)
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, including the broadcast address 255.255.255.255
    )
)
# Public IPv6 unicast lives in 2000::/3; everything outside it (loopback, ULA fc00::/7, link-local
# fe80::/10, site-local, multicast ff00::/8, unspecified, reserved) is refused, except the forms below
# that embed an IPv4 address, which are judged by that address.
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_NON_PUBLIC_V6 = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "2001::/23",  # IETF protocol assignments (Teredo, 2001::/32, is judged by its embedded addresses)
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637)
    )
)
_NAT64_V6 = ipaddress.IPv6Network("64:ff9b::/96")  # well-known NAT64 prefix: reaches the embedded IPv4
_COMPATIBLE_V6 = ipaddress.IPv6Network("::/96")  # deprecated IPv4-compatible form


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address stands for (mapped, compatible, NAT64, 6to4, Teredo)."""
    if address.ipv4_mapped is not None:
        return (address.ipv4_mapped,)
    if (address in _COMPATIBLE_V6 and int(address) > 1) or address in _NAT64_V6:  # :: and ::1 are themselves
        return (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF),)
    if address.sixtofour is not None:
        return (address.sixtofour,)
    if address.teredo is not None:
        return address.teredo  # (server, client)
    return ()


def is_public_address(address: IPAddress) -> bool:
    """Whether connecting to ``address`` reaches the public internet rather than a private network."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded:
            return all(is_public_address(inner) for inner in embedded)
        return address in _GLOBAL_UNICAST_V6 and not any(address in net for net in _NON_PUBLIC_V6)
    return not any(address in net for net in _NON_PUBLIC_V4)


# Cloud metadata and credential endpoints: reaching one from a server hands out the machine's secrets.
# Refused even inside an allowed network (169.254.0.0/16 for a link-local device, say); only an entry
# naming the very address opens one.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean, Hetzner and others
        "169.254.170.2",  # AWS ECS task metadata and credentials
        "169.254.170.23",  # AWS EKS Pod Identity agent
        "169.254.0.23",  # Tencent Cloud
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (legacy)
        "168.63.129.16",  # Azure WireServer: a public address, reachable only from inside Azure
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "fd00:ec2::23",  # AWS EKS Pod Identity agent over IPv6
        "fd20:ce::254",  # GCP metadata over IPv6
    )
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def allowed_address_check(networks: Iterable[str | IPNetwork]) -> AddressCheck:
    """The address check for ``Settings.allowed_networks``: public addresses, plus those in ``networks``.

    A cloud metadata address (:data:`METADATA_ADDRESSES`) passes only when ``networks`` names it exactly
    (``169.254.169.254`` or ``169.254.169.254/32``), never through a range that contains it. IPv6 forms
    that embed IPv4 addresses (mapped, NAT64, 6to4, Teredo) are judged by those addresses.
    """
    allowed = tuple(ipaddress.ip_network(net, strict=False) for net in networks)
    named = frozenset(net.network_address for net in allowed if net.num_addresses == 1)

    def address_allowed(address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address):
            embedded = _embedded_ipv4(address)
            if embedded:
                return all(address_allowed(inner) for inner in embedded)
        if address in METADATA_ADDRESSES:
            return address in named
        return is_public_address(address) or any(address in net for net in allowed)

    return address_allowed


async def resolve_host(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives for ``host``, in its order, without duplicates.

    Numeric hosts in any form the resolver accepts (``2130706433``, ``0x7f.1``, ``127.1``) come back
    as ordinary IP literals, so they are vetted like any other address.
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def parse_address(text: str) -> IPAddress | None:
    """``text`` as an IP address, or None when it is not an IP literal."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def refusal_reason(address: IPAddress) -> str:
    """Why a connection to ``address`` is refused, naming the IPv4 addresses it embeds, if any."""
    embedded = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else ()
    shown = f"{address} ({', '.join(map(str, embedded))})" if embedded else str(address)
    if METADATA_ADDRESSES.intersection((address, *embedded)):
        return f"refused to connect to cloud metadata address {shown} (not listed exactly in allowed_networks)"
    return f"refused to connect to private address {shown} (not in allowed_networks)"


# The (host, port) the request being sent names; GuardedBackend connects nowhere else. A context
# variable reaches the connect call because httpcore opens connections in the requesting task.
REQUEST_ORIGIN: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar("fetch_origin", default=None)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that vets the address of every TCP connection it opens.

    It resolves the host itself, refuses the connection when any address is not allowed (before
    connecting anywhere), and hands the inner backend the vetted IP literal, so the address checked is
    the address connected to. TLS is layered on by httpcore afterwards with the original host name as
    SNI and for certificate checks.
    """

    def __init__(self, address_allowed: AddressCheck, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.address_allowed = address_allowed
        if inner is None:
            from aggregator.netstream import AsyncioBackend

            inner = AsyncioBackend()
        self.inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        origin = REQUEST_ORIGIN.get()
        if origin is not None and (host.lower(), port) != origin:
            raise EgressRefused(f"refused to connect to {host}:{port}, not the host and port of the URL")
        literal = parse_address(host)
        try:
            if literal is not None:  # an IP literal needs no resolver, nor a trip to its thread
                candidates = [str(literal)]
            else:
                async with asyncio.timeout(timeout):
                    candidates = await resolve_host(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        except UnicodeError:  # the idna codec refuses a label that is empty or over 63 characters
            raise httpcore.ConnectError(f"cannot resolve {host}: not a valid host name") from None
        addresses = []
        for candidate in candidates:
            address = parse_address(candidate)
            if address is None:
                raise EgressRefused(f"refused to connect to unrecognised address {candidate!r}")
            if not self.address_allowed(address):
                raise EgressRefused(refusal_reason(address))
            addresses.append(address)
        if not addresses:
            raise httpcore.ConnectError(f"{host} has no address")
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("refused to connect to a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


@functools.cache
def _shared_ssl_context() -> ssl.SSLContext:
    """httpx's default verifying context, built once: loading the CA bundle costs tens of milliseconds."""
    return httpx.create_ssl_context()


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, over an httpcore pool whose every connection goes through GuardedBackend."""

    def __init__(self, backend: GuardedBackend) -> None:
        ssl_context = _shared_ssl_context()
        limits = httpx.Limits()
        super().__init__(verify=ssl_context, limits=limits)
        if not isinstance(self._pool, httpcore.AsyncConnectionPool):  # pragma: no cover - httpx internals moved
            raise RuntimeError("httpx transport layout changed: cannot install the egress guard")
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )
