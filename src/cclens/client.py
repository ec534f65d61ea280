"""Reaching the warehouse from the CLI whether or not ``cclens serve`` holds it.

DuckDB lets one process write a file and no other process even read it meanwhile, so while
``cclens serve`` runs, CLI commands go through its API. The contract (docs/server.md):

* ``serve`` writes a discovery file ``<warehouse>.server.json`` (mode 0600) with its URL, pid and a
  per-run *local token*; it removes the file at a clean exit.
* :func:`find_server` returns the server for the configured warehouse: ``settings.server_url``
  (``--server URL``, token from ``settings.server_token``) if set, else the discovery file when its pid
  is alive.
* :func:`open_reader` yields something with the read half of the warehouse protocol (``query``,
  ``query_arrow``, ``scalar``): the server (:class:`RemoteWarehouse`, over ``POST /api/v1/query``) when
  one runs, else the file opened directly. Report code written against ``wh.query(...)`` works
  unchanged in both modes::

      from cclens.client import open_reader
      with open_reader(settings) as wh:
          rows = daily_report(wh, since=..., until=...)

* :func:`create_token` creates an API token directly or through the server.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from .config import Settings
from .errors import QueryError, ServerError, WarehouseLockedError

if TYPE_CHECKING:  # imported where used: a CLI report through the server needs neither (start-up time)
    import httpx2 as httpx
    import pyarrow as pa

ARROW_STREAM = "application/vnd.apache.arrow.stream"


def discovery_path(db: str | Path) -> Path:
    """Where ``serve`` advertises itself for the warehouse ``db``."""
    p = Path(db).expanduser()
    return p.with_name(p.name + ".server.json")


@dataclass(frozen=True)
class ServerInfo:
    url: str
    token: str | None
    pid: int | None = None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_discovery(db: str | Path, url: str, token: str, **extra: Any) -> Path:
    """Write the discovery file (readable by the owner only)."""
    path = discovery_path(db)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url, "pid": os.getpid(), "token": token, "db": str(Path(db).expanduser()), **extra}, f)
    os.replace(tmp, path)
    return path


def remove_discovery(db: str | Path) -> None:
    path = discovery_path(db)
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def find_server(settings: Settings) -> ServerInfo | None:
    """The running server to go through, or None to use the file directly."""
    if settings.server_url:
        token = settings.server_token.get_secret_value() if settings.server_token else None
        return ServerInfo(settings.server_url.rstrip("/"), token)
    if str(settings.db) == ":memory:":
        return None
    path = discovery_path(settings.db)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    pid = doc.get("pid")
    if not isinstance(pid, int) or not _pid_alive(pid):
        return None
    return ServerInfo(str(doc["url"]).rstrip("/"), doc.get("token"), pid)


class RemoteWarehouse:
    """The read half of the warehouse protocol, served by a running ``cclens serve``."""

    dialect = "duckdb"

    def __init__(self, info: ServerInfo, *, timeout: float = 300.0):
        self.info = info
        self.path = info.url
        self._headers = {"Authorization": f"Bearer {info.token}"} if info.token else {}
        self._timeout = timeout
        self._client: httpx.Client | None = None

    @property
    def _http(self) -> httpx.Client:
        if self._client is None:
            import httpx2 as httpx

            self._client = httpx.Client(base_url=self.info.url, headers=self._headers, timeout=self._timeout)
        return self._client

    def query_arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        import httpx2 as httpx
        import pyarrow as pa
        import pyarrow.ipc

        try:
            r = self._http.post("/api/v1/query", json={"sql": sql, "params": list(params or [])},
                                headers={"Accept": ARROW_STREAM})
        except httpx.HTTPError as exc:
            raise ServerError(f"cannot reach cclens serve at {self.info.url}: {exc}; is it running?") from None
        if r.status_code == 400:
            raise QueryError(_detail(r))
        if r.status_code in (401, 403):
            raise ServerError(f"cclens serve at {self.info.url} refused the query ({_detail(r)}); "
                              "set server_token (CCLENS_SERVER_TOKEN) to an admin token")
        if r.status_code != 200:
            raise ServerError(f"cclens serve at {self.info.url} answered {r.status_code}: {_detail(r)}")
        return pa.ipc.open_stream(r.content).read_all()

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        return self.query_arrow(sql, params).to_pylist()

    def query_json(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """:meth:`query` over the server's JSON answer, with the standard library only (no HTTP client
        or pyarrow to import: a CLI report through the server starts faster). Values are as JSON has
        them: numbers, strings, lists; decimals (e.g. sums of integers), dates and timestamps arrive as
        strings, so callers convert what they use."""
        import http.client
        import urllib.parse

        url = urllib.parse.urlsplit(self.info.url)
        body = json.dumps({"sql": sql, "params": list(params or [])}, default=str).encode()
        headers = {**self._headers, "Content-Type": "application/json", "Accept": "application/json"}
        conn_class = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        try:
            conn = conn_class(url.hostname or "127.0.0.1", url.port, timeout=self._timeout)
            try:
                conn.request("POST", (url.path.rstrip("/") or "") + "/api/v1/query", body=body, headers=headers)
                resp = conn.getresponse()
                status, data = resp.status, resp.read()
            finally:
                conn.close()
        except (OSError, http.client.HTTPException) as exc:
            raise ServerError(f"cannot reach cclens serve at {self.info.url}: {exc}; is it running?") from None
        if status != 200:
            try:
                detail = str(json.loads(data).get("detail"))
            except (ValueError, AttributeError):
                detail = data[:300].decode(errors="replace")
            if status == 400:
                raise QueryError(detail)
            if status in (401, 403):
                raise ServerError(f"cclens serve at {self.info.url} refused the query ({detail}); "
                                  "set server_token (CCLENS_SERVER_TOKEN) to an admin token")
            raise ServerError(f"cclens serve at {self.info.url} answered {status}: {detail}")
        doc = json.loads(data)
        cols = doc["columns"]
        return [dict(zip(cols, row)) for row in doc["rows"]]

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        t = self.query_arrow(sql, params)
        return t.column(0)[0].as_py() if t.num_rows and t.num_columns else None

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        raise QueryError("this command writes to the warehouse, which `cclens serve` holds; "
                         "stop the server or use a command that sends data to it")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> "RemoteWarehouse":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _detail(r: httpx.Response) -> str:
    try:
        return str(r.json().get("detail"))
    except ValueError:
        return r.text[:300]


@contextmanager
def open_reader(settings: Settings) -> Iterator[Any]:
    """A warehouse to read from: through the running server if there is one, else the file."""
    info = find_server(settings)
    if info is not None:
        with RemoteWarehouse(info) as wh:
            yield wh
        return
    from .warehouse import open_warehouse

    wh = open_warehouse(settings.db)
    try:
        yield wh
    finally:
        wh.close()


def create_token(settings: Settings, role: str, name: str | None = None,
                 teams: Sequence[str] | None = None) -> tuple[str, str]:
    """Create an API token (a viewer token limited to ``teams`` when given); through the running server if
    one holds the warehouse."""
    info = find_server(settings)
    if info is None:
        from .server.auth import create_token as _create
        from .warehouse import open_warehouse

        try:
            wh = open_warehouse(settings.db)
        except WarehouseLockedError:
            raise
        try:
            return _create(wh, role, name, teams)
        finally:
            wh.close()
    import httpx2 as httpx

    headers = {"Authorization": f"Bearer {info.token}"} if info.token else {}
    try:
        body = {"role": role, "name": name, **({"teams": list(teams)} if teams else {})}
        r = httpx.post(f"{info.url}/api/v1/tokens", json=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        raise ServerError(f"cannot reach cclens serve at {info.url}: {exc}") from None
    if r.status_code != 200:
        raise ServerError(f"cclens serve at {info.url} did not create the token ({r.status_code}: {_detail(r)})")
    body = r.json()
    return body["token_id"], body["token"]
