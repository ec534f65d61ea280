"""``GET /api/v1/sessions/{session_id}``: the session as each source saw it.

See :mod:`cclens.model.session_view` for the shape; 404 when no source knows the session.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from starlette.concurrency import run_in_threadpool

from ..model.session_view import session_view
from .auth import Principal
from .deps import get_writer, require_reader
from .writer import Writer

router = APIRouter(prefix="/api/v1")


def _view(writer: Writer, session_id: str) -> dict[str, Any] | None:
    cur = writer.reader()
    try:
        return session_view(cur, session_id)
    finally:
        cur.close()


@router.get("/sessions/{session_id}")
async def get_session(session_id: str, writer: Writer = Depends(get_writer),
                      _: Principal = Depends(require_reader)) -> dict[str, Any]:
    """Per source (``otel``, ``transcripts``, ``hooks``): requests, tokens by type, cost, prompts, tool
    uses, first and last timestamp."""
    view = await run_in_threadpool(_view, writer, session_id)
    if view is None:
        raise HTTPException(404, f"no source has seen session {session_id}")
    return view
