"""Who may talk to ``chronum serve``: the token, the hosts and origins it answers.

The dashboard shows logs, and logs hold data, so:

- every API call, WebSocket and action needs the token (``Authorization: Bearer TOKEN``, or
  for a browser's WebSocket, which cannot set headers, a first message ``{"token": ...}``),
  compared in constant time;
- only the page's own origin may open the WebSocket (a browser sends any site's WebSockets
  with the user's network position; the Origin header says which site asked);
- only the bound host names are answered (``Host``), so a DNS name rebound to 127.0.0.1
  cannot make another site's page same-origin with the dashboard;
- a non-loopback bind needs a token the user chose (``--token`` or ``CHRONUM_SERVE_TOKEN``).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Iterable, Mapping

from ..errors import UsageError

__all__ = ["TOKEN_ENV", "Guard", "is_loopback", "make_token"]

TOKEN_ENV = "CHRONUM_SERVE_TOKEN"
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def make_token(host: str, given: str | None, environ: Mapping[str, str]) -> tuple[str, bool]:
    """(the token, whether the user chose it). A loopback bind without one gets a random
    token; any other bind without one is refused."""
    token = given or environ.get(TOKEN_ENV) or ""
    if token:
        if len(token) < 8:
            raise UsageError("the token must have at least 8 characters")
        return token, True
    if not is_loopback(host):
        raise UsageError(f"--host {host} would expose the dashboard (and the logs it shows) "
                         f"beyond this machine; give a token with --token or {TOKEN_ENV}, "
                         "or bind 127.0.0.1")
    return secrets.token_urlsafe(24), False


class Guard:
    """The token, the host names answered and the origins allowed, for one server."""

    def __init__(self, token: str, host: str, port: int) -> None:
        self._token = token.encode("utf-8")
        names = set(_LOOPBACK_NAMES) if is_loopback(host) else {host}
        if not is_loopback(host) and host not in ("0.0.0.0", "::"):
            names.add(host)
        self.any_host = host in ("0.0.0.0", "::")
        self.hosts = {f"{name}:{port}" for name in names} | names
        self.origins = {f"http://{name}:{port}" for name in names}

    def token_ok(self, given: str | None) -> bool:
        """Constant time: how long the comparison takes says nothing about the token."""
        return hmac.compare_digest((given or "").encode("utf-8"), self._token)

    def bearer_ok(self, header: str | None) -> bool:
        scheme, _, value = (header or "").partition(" ")
        return self.token_ok(value.strip() if scheme.lower() == "bearer" else "")

    def host_ok(self, host: str | None) -> bool:
        return self.any_host or (host or "") in self.hosts

    def origin_ok(self, origin: str | None, host: str | None) -> bool:
        """No Origin (a program, not a browser) is fine: it needs the token anyway. A
        browser's Origin must be the dashboard's own."""
        if origin is None:
            return True
        if self.any_host:
            return origin == f"http://{host}"
        return origin in self.origins


def allowed(items: Iterable[str]) -> str:
    return ", ".join(sorted(items))
