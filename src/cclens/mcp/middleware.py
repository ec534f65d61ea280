"""The audit middleware of the cclens MCP server: every ``tools/call``, ``resources/read`` and
``prompts/get`` is written to the audit log (:mod:`cclens.audit`) through the backend before the answer
leaves — valid or not, with the caller, the arguments as sent, the rows returned and the outcome."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel

from ..audit import AuditEntry
from .tools import Caller

if TYPE_CHECKING:
    from .server import Backend


class AuditMiddleware:
    """Writes every ``tools/call``, ``resources/read`` and ``prompts/get`` to the audit log: caller,
    arguments, rows returned, success or the error. A call that cannot be audited is answered with an
    error instead of its result."""

    AUDITED = ("tools/call", "resources/read", "prompts/get")

    def __init__(self, backend: Backend):
        self.backend = backend
        self.calls = 0
        self.errors = 0

    async def __call__(self, ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        if ctx.method not in self.AUDITED:
            return await call_next(ctx)
        params = dict(ctx.params or {})
        params.pop("_meta", None)
        if ctx.method == "tools/call":
            action = f"tools/call {params.get('name')}"
            arguments = params.get("arguments") or {}
        elif ctx.method == "prompts/get":
            action = f"prompts/get {params.get('name')}"
            arguments = params.get("arguments") or {}
        else:
            action, arguments = "resources/read", {"uri": params.get("uri")}
        try:
            caller = self.backend.caller(ctx.request)
        except Exception:  # noqa: BLE001 - the transport already authenticated; record what we can
            caller = Caller("unknown", "unknown")
        t0 = time.perf_counter()
        entry = AuditEntry(principal=caller.principal, role=caller.role, surface=self.backend.surface,
                           action=action, arguments=arguments if isinstance(arguments, dict) else {"value": arguments})
        try:
            result = await call_next(ctx)
        except Exception as exc:  # a protocol error (bad params, unknown method): recorded, then re-raised
            entry.ok, entry.error = False, str(exc) or type(exc).__name__
            entry.duration_ms = (time.perf_counter() - t0) * 1000
            self.calls += 1
            self.errors += 1
            await self._write(entry)
            raise
        entry.ok, entry.error, entry.rows = _outcome(result)
        entry.duration_ms = (time.perf_counter() - t0) * 1000
        self.calls += 1
        if not entry.ok:
            self.errors += 1
        try:
            await self.backend.audit(entry)
        except Exception as exc:  # noqa: BLE001 - no audit, no answer
            self.errors += 1
            message = f"the call could not be written to the audit log ({exc}); nothing was returned"
            if ctx.method == "tools/call":
                return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)
            from mcp.shared.exceptions import MCPError

            raise MCPError(code=-32603, message=message) from None
        return result

    async def _write(self, entry: AuditEntry) -> None:
        try:
            await self.backend.audit(entry)
        except Exception:  # noqa: BLE001 - the original error is what the caller must see
            pass


def _outcome(result: Any) -> tuple[bool, str | None, int | None]:
    """``(ok, error, rows)`` of a handler result (a model or its serialised dict)."""
    if isinstance(result, BaseModel):
        result = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    if not isinstance(result, dict):
        return True, None, None
    structured = result.get("structuredContent") or {}
    rows = structured.get("row_count") if isinstance(structured, dict) else None
    if result.get("isError"):
        texts = [c.get("text", "") for c in result.get("content") or [] if isinstance(c, dict)]
        return False, " ".join(texts)[:2000] or "error", None
    return True, None, rows if isinstance(rows, int) else None
