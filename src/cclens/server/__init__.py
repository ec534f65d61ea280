"""``cclens serve``: one process that owns the warehouse and receives pushed data.

Public entry point: :func:`cclens.server.app.create_app`. Routes live in modules listed in
:data:`cclens.server.app.ROUTER_MODULES`; each exposes ``router: fastapi.APIRouter`` and uses the
dependencies in :mod:`cclens.server.deps` (the single writer, read cursors, auth).
"""
