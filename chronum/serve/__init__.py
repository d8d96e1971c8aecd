"""``chronum serve``: a local dashboard over the store, its JSON API and WebSocket.

Needs the ``serve`` extra (``pip install 'chronum[serve]'``: Starlette, uvicorn, websockets,
prometheus_client); nothing else in Chronum imports this package.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from ..errors import UsageError

__all__ = ["serve"]


def _need_extra() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"`chronum serve` needs the serve extra ({exc.name} is missing): "
                         "pip install 'chronum[serve]'") from None


def serve(db: Path, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
          open_browser: bool = False, environ: Mapping[str, str] = os.environ) -> None:
    """Serve the dashboard of the store ``db`` until interrupted."""
    from .security import Guard, make_token

    token, chosen = make_token(host, token, environ)
    _need_extra()
    import uvicorn

    from .app import make_app

    app = make_app(db, Guard(token, host, port))
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}/"
    print(f"chronum serve: the dashboard of {db} at {url}", file=sys.stderr)
    # The token only ever in the fragment: browsers never send it to a server or in a Referer.
    print(f"chronum serve: open {url}#token={token}" if not chosen else
          f"chronum serve: open {url}#token=<your token>", file=sys.stderr, flush=True)
    if open_browser:
        import webbrowser

        webbrowser.open(f"{url}#token={token}")
    # uvicorn >= 0.35 says at start that this implementation is deprecated: the user can do
    # nothing about it, and the implementation is the one the dashboard is tested with.
    import warnings

    warnings.filterwarnings("ignore", message="The `websockets` implementation is deprecated")
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            ws="websockets", lifespan="on")
    uvicorn.Server(config).run()
