"""Modelling OTLP requests from Claude Code into the warehouse.

:func:`model_requests` takes a batch of accepted requests (already decoded once by the receiver) and,
in the caller's transaction:

* skips requests already stored (same ``request_id`` when the spool is replayed, or the same body
  SHA-256 when a client retried a request we had acknowledged too late) and notes them in
  ``otlp_duplicate``;
* lands each request (``landing_otlp_request``: exact payload, or the redacted protobuf when content
  had to be removed) with receiver and request id;
* writes every log record to ``otel_event`` (every Claude Code event, unknown ones included), every
  metric data point to ``otel_point`` (sums as deltas: cumulative series are converted per series,
  with resets detected by a new start time or a decrease), every span to ``otel_span``;
* upserts ``api_request`` events into the shared ``api_request`` table by request id (tokens: the
  larger of what each source said; ``from_otel`` set), ``user_prompt`` into ``prompt`` and
  ``tool_decision``/``tool_result`` into ``tool_use`` with ``source = 'otel'``.

Content attributes (prompt text, responses, tool input/parameters, raw bodies) are replaced by
``<REDACTED>`` unless ``capture_content`` is on, in both landing and model.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

import orjson
import pyarrow as pa

from ..sources.otlp import any_value, hex_id
from ..metrics.rollup import mark_dirty, mark_dirty_arrow
from .pricing import normalise_model

REDACTED = "<REDACTED>"
# Attributes that carry user content; kept only with capture_content (ARCHITECTURE: governance).
CONTENT_KEYS = frozenset({"prompt", "response", "tool_input", "tool_parameters", "body", "user_prompt",
                          "full_command", "bash_command", "gen_ai.prompt", "gen_ai.completion"})
_TS = pa.timestamp("ns", tz="UTC")


def normalize_model(raw: str | None) -> str | None:
    """The model name without Claude Code's context-window suffix (``claude-opus-4-8[1m]``)."""
    return normalise_model(raw) if raw else raw


def query_source_class(raw: str | None) -> str | None:
    """Map an event's ``query_source`` (``sdk``, ``repl_main_thread``, ``agent:builtin:…``,
    ``generate_session_title``…) onto the metric vocabulary ``main | subagent | auxiliary``.
    Same rule as the SQL macro ``cc_query_source_class``."""
    if raw is None:
        return None
    if raw in ("main", "subagent", "auxiliary"):
        return raw
    if raw in ("repl_main_thread", "sdk") or raw.startswith("repl_main_thread"):
        return "main"
    if raw.startswith("agent:") or raw == "agent":
        return "subagent"
    return "auxiliary"


@dataclass
class OtlpRequest:
    """One accepted export request as handed from the receiver to the writer."""

    request_id: str
    signal: str                     # logs | metrics | traces
    receiver: str                   # http | grpc
    received_at: float              # unix seconds
    message: Any                    # the decoded Export*ServiceRequest
    raw: bytes                      # the body as received (decompressed)
    raw_format: str                 # protobuf | json
    body_sha256: str
    records: int = 0
    rejected: int = 0
    content_type: str | None = None
    content_encoding: str | None = None
    user_agent: str | None = None
    peer: str | None = None
    token_id: str | None = None
    spool_segment: int | None = None
    spool_offset: int | None = None


class SeriesState:
    """Last point of every cumulative series, to turn running totals into deltas.

    Changes made while modelling a batch stay pending until :meth:`commit` (after the transaction
    committed) or are dropped by :meth:`discard`, so a rolled-back batch leaves no trace."""

    def __init__(self) -> None:
        self._state: dict[str, tuple[int, int, float]] = {}
        self._pending: dict[str, tuple[int, int, float]] = {}
        self._loaded = False

    def load(self, wh: Any) -> None:
        if not self._loaded:
            for r in wh.query("SELECT series_key, start_ns, last_ns, last_value FROM otel_series_state"):
                self._state[r["series_key"]] = (r["start_ns"], r["last_ns"], r["last_value"])
            self._loaded = True

    def delta(self, key: str, start_ns: int, ts_ns: int, value: float, monotonic: bool) -> tuple[float, bool]:
        """``(delta, is_reset)`` for a cumulative point of series ``key``."""
        prev = self._pending.get(key) or self._state.get(key)
        if prev is None:
            self._pending[key] = (start_ns, ts_ns, value)
            return value, False
        p_start, p_ts, p_value = prev
        if ts_ns <= p_ts:  # an old or repeated point: it adds nothing
            return 0.0, False
        if start_ns != p_start or (monotonic and value < p_value):  # the series restarted
            self._pending[key] = (start_ns, ts_ns, value)
            return value, True
        self._pending[key] = (start_ns, ts_ns, value)
        return value - p_value, False

    def write(self, wh: Any) -> None:
        if not self._pending:
            return
        keys = list(self._pending)
        data = pa.table({
            "series_key": keys,
            "start_ns": pa.array([self._pending[k][0] for k in keys], pa.int64()),
            "last_ns": pa.array([self._pending[k][1] for k in keys], pa.int64()),
            "last_value": pa.array([float(self._pending[k][2]) for k in keys], pa.float64()),
        })
        wh.register("_otel_series", data)
        try:
            wh.execute("INSERT OR REPLACE INTO otel_series_state SELECT * FROM _otel_series")
        finally:
            wh.unregister("_otel_series")

    def commit(self) -> None:
        self._state.update(self._pending)
        self._pending.clear()

    def discard(self) -> None:
        self._pending.clear()


@dataclass
class _Cols:
    """Column-wise rows of one table, turned into an Arrow table in one go."""

    names: Sequence[str]
    rows: list[tuple] = field(default_factory=list)

    def table(self, types: dict[str, pa.DataType]) -> pa.Table:
        cols = list(zip(*self.rows)) if self.rows else [[] for _ in self.names]
        return pa.table({n: _array(c, types.get(n, pa.string())) for n, c in zip(self.names, cols)})


def _array(values: Sequence[Any], typ: pa.DataType | None) -> pa.Array:
    """An Arrow array; a string column holding a number or a list (odd input) is coerced to text here,
    once per column, instead of checking every value on the hot path."""
    try:
        return pa.array(values, typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        if typ != pa.string():
            raise
        return pa.array([_str(v) for v in values], pa.string())


_EVENT_COLS = ("request_id", "record_index", "event_name", "ts", "observed_ts", "session_id", "prompt_id",
               "user_id", "user_email", "account_uuid", "organization_id", "sequence", "severity_number",
               "severity_text", "body", "trace_id", "span_id", "scope_name", "resource_hash", "attributes")
_POINT_COLS = ("request_id", "metric_name", "unit", "kind", "temporality", "is_monotonic", "start_ts", "ts",
               "value", "value_raw", "is_reset", "series_key", "session_id", "user_id", "model", "model_raw",
               "type", "query_source", "resource_hash", "scope_name", "attributes", "data")
_SPAN_COLS = ("request_id", "trace_id", "span_id", "parent_span_id", "name", "kind", "start_ts", "end_ts",
              "duration_ms", "status_code", "status_message", "session_id", "scope_name", "resource_hash",
              "attributes", "events")
_TYPES = {
    "ts": _TS, "observed_ts": _TS, "start_ts": _TS, "end_ts": _TS, "received_at": _TS, "ingested_at": _TS,
    "record_index": pa.int32(), "sequence": pa.int64(), "severity_number": pa.int32(), "kind": None,
    "value": pa.float64(), "value_raw": pa.float64(), "is_reset": pa.bool_(), "is_monotonic": pa.bool_(),
    "duration_ms": pa.float64(), "status_code": pa.int32(), "payload": pa.binary(), "redacted": pa.bool_(),
    "record_count": pa.int32(), "rejected_count": pa.int32(), "spool_segment": pa.int64(),
    "spool_offset": pa.int64(),
}
_TEMPORALITY = {0: "unspecified", 1: "delta", 2: "cumulative"}
# Event attributes stored in their own otel_event columns, so not repeated in its attributes JSON
# (half the bytes of a typical event; the landing payload keeps the request as received).
PROMOTED = ("session.id", "user.id", "prompt.id", "event.name", "event.sequence", "user.email",
            "user.account_uuid", "organization.id")


def _rest_json(a: dict[str, Any]) -> str:
    rest = a.copy()
    for k in PROMOTED:
        rest.pop(k, None)
    return orjson.dumps(rest).decode()


def compress_payload(data: bytes) -> bytes:
    """Landing payloads are stored deflated (zlib, fast level): batches of similar events shrink ~10x."""
    return zlib.compress(data, 1)


def payload_bytes(payload: bytes, encoding: str | None) -> bytes:
    """The request body as received, from a ``landing_otlp_request`` row."""
    return zlib.decompress(payload) if encoding == "deflate" else payload


_NS_MAX = 2**63 - 1


def _ns(value: int) -> int | None:
    """A nanosecond timestamp that fits a signed int64 (fixed64 fields may not), else None."""
    return value if 0 < value <= _NS_MAX else None


def _ns_from_iso(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return _ns(int(dt.timestamp() * 1_000_000) * 1000)
    except (ValueError, OverflowError, OSError):
        return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value == value and abs(value) < 9e18 else None
    if isinstance(value, str):
        try:
            return int(float(value)) if "." in value or "e" in value.lower() else int(value)
        except (ValueError, OverflowError):
            return None
    return None


def _float(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _str(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


class OtelModeller:
    """Models batches of :class:`OtlpRequest`. One instance per server; used by the writer thread only."""

    def __init__(self, *, capture_content: bool = False, price_sync: Any = None):
        self.capture_content = capture_content
        self.series = SeriesState()
        self._resources: set[str] = set()
        self._models: set[str] | None = None
        self._price_sync = price_sync  # callable(wh) re-pricing api_request models, or None

    # -- entry point ---------------------------------------------------------------------------
    def model_requests(self, wh: Any, reqs: Sequence[OtlpRequest]) -> dict[str, int]:
        """Land and model ``reqs`` in the caller's transaction; returns counts. Idempotent."""
        self.series.discard()
        self.series.load(wh)
        fresh = self._drop_duplicates(wh, reqs)
        b = _Batch(self)
        for req in fresh:
            b.request_redacted = False
            if req.signal == "logs":
                b.add_logs(req)
            elif req.signal == "metrics":
                b.add_metrics(req)
            else:
                b.add_traces(req)
            b.add_landing(req)
        b.write(wh)
        return {"requests": len(fresh), "duplicates": len(reqs) - len(fresh), "events": len(b.events.rows),
                "points": len(b.points.rows), "spans": len(b.spans.rows)}

    def committed(self) -> None:
        self.series.commit()

    def rolled_back(self) -> None:
        self.series.discard()

    def _drop_duplicates(self, wh: Any, reqs: Sequence[OtlpRequest]) -> list[OtlpRequest]:
        ids = [r.request_id for r in reqs]
        hashes = [r.body_sha256 for r in reqs]
        seen_ids: set[str] = set()
        seen_hashes: set[str] = set()
        if reqs:
            for row in wh.query(
                "SELECT request_id, body_sha256 FROM landing_otlp_request "
                "WHERE request_id IN (SELECT unnest(?::VARCHAR[])) OR body_sha256 IN (SELECT unnest(?::VARCHAR[]))",
                [ids, hashes],
            ):
                seen_ids.add(row["request_id"])
                seen_hashes.add(row["body_sha256"])
        fresh, dups = [], []
        for r in reqs:
            if r.request_id in seen_ids:
                continue  # a spool replay of something already committed: nothing to record
            if r.body_sha256 in seen_hashes:
                dups.append(r)
                continue
            seen_ids.add(r.request_id)
            seen_hashes.add(r.body_sha256)
            fresh.append(r)
        if dups:
            wh.append("otlp_duplicate", pa.table({
                "request_id": [r.request_id for r in dups], "body_sha256": [r.body_sha256 for r in dups],
                "receiver": [r.receiver for r in dups], "signal": [r.signal for r in dups],
                "received_at": pa.array([int(r.received_at * 1e9) for r in dups], _TS),
            }))
        return fresh


class _Batch:
    """Rows of one writer batch, accumulated per table and written with a few bulk statements."""

    def __init__(self, m: OtelModeller):
        self.m = m
        self.capture = m.capture_content
        self.events = _Cols(_EVENT_COLS)
        self.points = _Cols(_POINT_COLS)
        self.spans = _Cols(_SPAN_COLS)
        self.landing: list[dict[str, Any]] = []
        self.resources: dict[str, tuple] = {}
        self.api: dict[str, dict[str, Any]] = {}
        self.prompts: dict[str, tuple] = {}
        self.tools: dict[str, dict[str, Any]] = {}
        self.request_redacted = False
        self.now = datetime.now(timezone.utc)

    # -- shared pieces ---------------------------------------------------------------------------
    def _attrs(self, kvs: Iterable[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        capture = self.capture
        for kv in kvs:
            v = kv.value
            w = v.WhichOneof("value")
            key = kv.key
            if w == "string_value":
                s = v.string_value
                if not capture and key in CONTENT_KEYS and s != REDACTED:
                    v.string_value = s = REDACTED
                    self.request_redacted = True
                out[key] = s
            elif w == "int_value":
                out[key] = v.int_value
            elif w == "double_value":
                out[key] = v.double_value
            elif w == "bool_value":
                out[key] = v.bool_value
            else:
                if not capture and key in CONTENT_KEYS and w is not None:
                    v.string_value = REDACTED
                    self.request_redacted = True
                    out[key] = REDACTED
                else:
                    out[key] = any_value(v)
        return out

    def _resource(self, resource: Any) -> tuple[str, dict[str, Any]]:
        attrs = self._attrs(resource.attributes)
        blob = orjson.dumps(attrs, option=orjson.OPT_SORT_KEYS)
        digest = hashlib.sha1(blob).hexdigest()
        if digest not in self.m._resources and digest not in self.resources:
            self.resources[digest] = (digest, _str(attrs.get("service.name")), _str(attrs.get("service.version")),
                                      _str(attrs.get("host.name")), _str(attrs.get("os.type")), blob.decode(),
                                      self.now)
        return digest, attrs

    # -- logs ----------------------------------------------------------------------------------
    def add_logs(self, req: OtlpRequest) -> None:
        rid = req.request_id
        idx = 0
        rows = self.events.rows
        fallback_ns = int(req.received_at * 1e9)
        for rl in req.message.resource_logs:
            res_hash, res_attrs = self._resource(rl.resource)
            for sl in rl.scope_logs:
                scope = sl.scope.name or None
                for rec in sl.log_records:
                    a = self._attrs(rec.attributes)
                    body = rec.body
                    bw = body.WhichOneof("value")
                    body_s = body.string_value if bw == "string_value" else (
                        orjson.dumps(any_value(body)).decode() if bw else None)
                    name = a.get("event.name") or rec.event_name or None
                    if not name and body_s and body_s.startswith("claude_code."):
                        name = body_s[len("claude_code."):]
                    ts = _ns(rec.time_unix_nano) or _ns_from_iso(a.get("event.timestamp")) \
                        or _ns(rec.observed_time_unix_nano) or fallback_ns
                    session_id = a.get("session.id")
                    prompt_id = a.get("prompt.id")
                    rows.append((rid, idx, name, ts, _ns(rec.observed_time_unix_nano), session_id,
                                 prompt_id, a.get("user.id"), a.get("user.email"),
                                 a.get("user.account_uuid"), a.get("organization.id"),
                                 _int(a.get("event.sequence")), rec.severity_number or None,
                                 rec.severity_text or None, body_s, hex_id(rec.trace_id), hex_id(rec.span_id),
                                 scope, res_hash, _rest_json(a)))
                    if name == "api_request":
                        self._api_request(a, ts, _str(session_id), _str(prompt_id), res_attrs, idx, rid)
                    elif name == "user_prompt" and prompt_id:
                        prompt_id = _str(prompt_id)
                        text = a.get("prompt") if self.capture and a.get("prompt") != REDACTED else None
                        self.prompts.setdefault(prompt_id, (prompt_id, _str(session_id), ts,
                                                            _str(res_attrs.get("host.name")),
                                                            _int(a.get("prompt_length")), "otel", _str(text)))
                    elif name in ("tool_decision", "tool_result"):
                        self._tool(name, a, ts, _str(session_id))
                    idx += 1

    def _api_request(self, a: dict, ts: int, session_id: str | None, prompt_id: str | None, res: dict,
                     idx: int, rid: str) -> None:
        request_id = _str(a.get("request_id")) or None
        key = request_id or f"otel:{session_id}:{a.get('event.sequence')}:{rid}:{idx}"
        model_raw = _str(a.get("model"))
        row = {
            "request_key": key, "request_id": request_id, "session_id": session_id, "ts": ts,
            "model": normalize_model(model_raw), "model_raw": model_raw,
            "input_tokens": _int(a.get("input_tokens")) or 0, "output_tokens": _int(a.get("output_tokens")) or 0,
            "cache_creation_tokens": _int(a.get("cache_creation_tokens")) or 0,
            "cache_read_tokens": _int(a.get("cache_read_tokens")) or 0,
            "speed": _str(a.get("speed")), "host": _str(res.get("host.name")),
            "version": _str(res.get("service.version")), "prompt_id": prompt_id,
            "query_source": _str(a.get("query_source")), "duration_ms": _int(a.get("duration_ms")),
            "user_id": _str(a.get("user.id")), "user_email": _str(a.get("user.email")),
            "account_uuid": _str(a.get("user.account_uuid")), "organization_id": _str(a.get("organization.id")),
            "otel_cost_usd": _float(a.get("cost_usd")),
        }
        prev = self.api.get(key)
        if prev:
            for k in ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens"):
                row[k] = max(row[k], prev[k])
        self.api[key] = row

    def _tool(self, name: str, a: dict, ts: int, session_id: str | None) -> None:
        tid = _str(a.get("tool_use_id"))
        if not tid:
            return
        t = self.tools.setdefault(tid, {"tool_use_id": tid, "session_id": session_id, "ts": None,
                                        "tool_name": None, "result_ts": None, "is_error": None})
        t["tool_name"] = t["tool_name"] or _str(a.get("tool_name"))
        t["session_id"] = t["session_id"] or session_id
        if name == "tool_decision":
            t["ts"] = ts
        else:
            t["result_ts"] = ts
            success = a.get("success")
            t["is_error"] = not (success is True or str(success).lower() == "true")
            if t["ts"] is None:
                dur = _int(a.get("duration_ms"))
                t["ts"] = ts - dur * 1_000_000 if dur is not None else ts

    # -- metrics -------------------------------------------------------------------------------
    def add_metrics(self, req: OtlpRequest) -> None:
        rid = req.request_id
        rows = self.points.rows
        series = self.m.series
        for rm in req.message.resource_metrics:
            res_hash, _ = self._resource(rm.resource)
            for sm in rm.scope_metrics:
                scope = sm.scope.name or None
                for metric in sm.metrics:
                    kind = metric.WhichOneof("data")
                    if kind is None:
                        continue
                    data = getattr(metric, kind)
                    temporality = _TEMPORALITY.get(getattr(data, "aggregation_temporality", 0), "unspecified") \
                        if kind in ("sum", "histogram", "exponential_histogram") else None
                    monotonic = bool(getattr(data, "is_monotonic", False)) if kind == "sum" else None
                    for dp in data.data_points:
                        a = self._attrs(dp.attributes)
                        extra = None
                        if kind in ("sum", "gauge"):
                            raw = dp.as_double if dp.WhichOneof("value") == "as_double" else float(dp.as_int)
                        else:
                            raw = float(getattr(dp, "sum", 0.0))
                            extra = orjson.dumps(_point_data(kind, dp)).decode()
                        value, reset = raw, False
                        key = None
                        if temporality == "cumulative":
                            key = hashlib.sha1(orjson.dumps([metric.name, res_hash, sorted(a.items())],
                                                            default=str)).hexdigest()
                            if kind == "sum":
                                value, reset = series.delta(key, _ns(dp.start_time_unix_nano) or 0, _ns(dp.time_unix_nano) or 0,
                                                            raw, bool(monotonic))
                        model_raw = _str(a.get("model"))
                        rows.append((rid, metric.name, metric.unit or None, kind, temporality, monotonic,
                                      _ns(dp.start_time_unix_nano), _ns(dp.time_unix_nano), value, raw, reset,
                                      key, _str(a.get("session.id")), _str(a.get("user.id")),
                                      normalize_model(model_raw), model_raw, _str(a.get("type")),
                                      _str(a.get("query_source")), res_hash, scope, orjson.dumps(a).decode(), extra))

    # -- traces --------------------------------------------------------------------------------
    def add_traces(self, req: OtlpRequest) -> None:
        rid = req.request_id
        rows = self.spans.rows
        for rs in req.message.resource_spans:
            res_hash, _ = self._resource(rs.resource)
            for ss in rs.scope_spans:
                scope = ss.scope.name or None
                for sp in ss.spans:
                    a = self._attrs(sp.attributes)
                    events = [{"name": e.name, "time_unix_nano": e.time_unix_nano,
                               "attributes": self._attrs(e.attributes)} for e in sp.events]
                    dur = (sp.end_time_unix_nano - sp.start_time_unix_nano) / 1e6 \
                        if sp.end_time_unix_nano and sp.start_time_unix_nano else None
                    rows.append((rid, hex_id(sp.trace_id), hex_id(sp.span_id), hex_id(sp.parent_span_id),
                                 sp.name, sp.kind, _ns(sp.start_time_unix_nano), _ns(sp.end_time_unix_nano),
                                 dur, sp.status.code, sp.status.message or None, _str(a.get("session.id")),
                                 scope, res_hash, orjson.dumps(a).decode(),
                                 orjson.dumps(events).decode() if events else None))

    # -- landing -------------------------------------------------------------------------------
    def add_landing(self, req: OtlpRequest) -> None:
        if self.request_redacted:
            payload, fmt = req.message.SerializeToString(), "protobuf"
        else:
            payload, fmt = req.raw, req.raw_format
        self.landing.append({
            "request_id": req.request_id, "receiver": req.receiver, "signal": req.signal,
            "received_at": int(req.received_at * 1e9), "content_type": req.content_type,
            "content_encoding": req.content_encoding, "user_agent": req.user_agent, "peer": req.peer,
            "token_id": req.token_id, "body_sha256": req.body_sha256, "payload": compress_payload(payload),
            "payload_encoding": "deflate",
            "payload_format": fmt, "redacted": self.request_redacted, "record_count": req.records,
            "rejected_count": req.rejected, "spool_segment": req.spool_segment, "spool_offset": req.spool_offset,
            "ingested_at": self.now,
        })

    # -- writing -------------------------------------------------------------------------------
    def write(self, wh: Any) -> None:
        if self.resources:
            names = ("resource_hash", "service_name", "service_version", "host_name", "os_type", "attributes",
                     "first_seen")
            t = _Cols(names, list(self.resources.values())).table({"first_seen": pa.timestamp("us", tz="UTC")})
            wh.register("_otel_res", t)
            try:
                wh.execute("INSERT INTO otel_resource SELECT * FROM _otel_res ON CONFLICT DO NOTHING")
            finally:
                wh.unregister("_otel_res")
        if self.landing:
            cols = list(self.landing[0])
            t = pa.table({c: pa.array([r[c] for r in self.landing], _TYPES.get(c)) for c in cols})
            wh.append("landing_otlp_request", t)
        if self.events.rows:
            wh.append("otel_event", self.events.table(_TYPES))
        if self.points.rows:
            points = self.points.table(_TYPES)
            mark_dirty_arrow(wh, "otel_point", points)  # metric rollups recompute these days
            wh.append("otel_point", points)
        if self.spans.rows:
            wh.append("otel_span", self.spans.table(_TYPES))
        self.m.series.write(wh)
        if self.api:
            self._upsert_api(wh)
        if self.prompts:
            self._insert_prompts(wh)
        if self.tools:
            self._upsert_tools(wh)
        self.m._resources.update(self.resources)

    def _upsert_api(self, wh: Any) -> None:
        rows = list(self.api.values())
        cols = list(rows[0])
        t = pa.table({c: pa.array([r[c] for r in rows], _TS if c == "ts" else (
            pa.int64() if c.endswith("_tokens") or c == "duration_ms" else None)) for c in cols})
        wh.register("_otel_api", t)
        try:
            mark_dirty(wh, "api_request", "SELECT ts FROM _otel_api UNION SELECT a.ts FROM api_request a "
                       "JOIN _otel_api USING (request_key)")  # metric rollups recompute these days
            existing = {r["request_key"] for r in wh.query(
                "SELECT request_key FROM api_request WHERE request_key IN (SELECT request_key FROM _otel_api)")}
            if existing:
                wh.execute("""
                    UPDATE api_request a SET
                        input_tokens = greatest(a.input_tokens, s.input_tokens),
                        output_tokens = greatest(a.output_tokens, s.output_tokens),
                        cache_creation_tokens = greatest(a.cache_creation_tokens, s.cache_creation_tokens),
                        cache_read_tokens = greatest(a.cache_read_tokens, s.cache_read_tokens),
                        session_id = coalesce(a.session_id, s.session_id), ts = coalesce(a.ts, s.ts),
                        model = coalesce(a.model, s.model), model_raw = coalesce(a.model_raw, s.model_raw),
                        speed = coalesce(a.speed, s.speed), host = coalesce(a.host, s.host),
                        version = coalesce(a.version, s.version), prompt_id = coalesce(a.prompt_id, s.prompt_id),
                        query_source = coalesce(s.query_source, a.query_source),
                        duration_ms = coalesce(s.duration_ms, a.duration_ms),
                        user_id = coalesce(s.user_id, a.user_id), user_email = coalesce(s.user_email, a.user_email),
                        account_uuid = coalesce(s.account_uuid, a.account_uuid),
                        organization_id = coalesce(s.organization_id, a.organization_id),
                        otel_cost_usd = coalesce(s.otel_cost_usd, a.otel_cost_usd),
                        from_otel = true, updated_at = now()
                    FROM _otel_api s WHERE a.request_key = s.request_key""")
        finally:
            wh.unregister("_otel_api")
        new = t.filter(pa.array([r["request_key"] not in existing for r in rows]))
        if new.num_rows:
            n = new.num_rows
            new = new.append_column("from_otel", pa.array([True] * n)).append_column(
                "from_transcripts", pa.array([False] * n)).append_column(
                "updated_at", pa.array([self.now] * n, pa.timestamp("us", tz="UTC")))
            wh.append("api_request", new)
        models = {r["model"] for r in rows if r["model"]}
        if self.m._price_sync is not None:
            if self.m._models is None:
                self.m._models = {r["model"] for r in wh.query("SELECT model FROM model_price")}
            if models - self.m._models:
                self.m._price_sync(wh)
                self.m._models |= models

    def _insert_prompts(self, wh: Any) -> None:
        names = ("prompt_id", "session_id", "ts", "host", "length", "source", "text")
        t = _Cols(names, list(self.prompts.values())).table({"ts": _TS, "length": pa.int32()})
        wh.register("_otel_prompt", t)
        try:
            existing = {r["prompt_id"] for r in wh.query(
                "SELECT prompt_id FROM prompt WHERE source = 'otel' AND prompt_id IN (SELECT prompt_id FROM _otel_prompt)")}
        finally:
            wh.unregister("_otel_prompt")
        new = t.filter(pa.array([p not in existing for p in t.column("prompt_id").to_pylist()]))
        if new.num_rows:
            wh.append("prompt", new)

    def _upsert_tools(self, wh: Any) -> None:
        rows = list(self.tools.values())
        t = pa.table({
            "tool_use_id": [r["tool_use_id"] for r in rows], "session_id": [r["session_id"] for r in rows],
            "ts": pa.array([r["ts"] for r in rows], _TS), "tool_name": [r["tool_name"] for r in rows],
            "result_ts": pa.array([r["result_ts"] for r in rows], _TS),
            "is_error": pa.array([r["is_error"] for r in rows], pa.bool_()),
        })
        wh.register("_otel_tool", t)
        try:
            existing = {r["tool_use_id"] for r in wh.query(
                "SELECT tool_use_id FROM tool_use WHERE source = 'otel' "
                "AND tool_use_id IN (SELECT tool_use_id FROM _otel_tool)")}
            if existing:
                wh.execute("""
                    UPDATE tool_use u SET ts = coalesce(u.ts, s.ts), tool_name = coalesce(u.tool_name, s.tool_name),
                        result_ts = coalesce(s.result_ts, u.result_ts), is_error = coalesce(s.is_error, u.is_error),
                        session_id = coalesce(u.session_id, s.session_id)
                    FROM _otel_tool s WHERE u.tool_use_id = s.tool_use_id AND u.source = 'otel'""")
        finally:
            wh.unregister("_otel_tool")
        new = t.filter(pa.array([r["tool_use_id"] not in existing for r in rows]))
        if new.num_rows:
            wh.append("tool_use", new.append_column("source", pa.array(["otel"] * new.num_rows)))


def _point_data(kind: str, dp: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"count": getattr(dp, "count", None)}
    if kind == "histogram":
        out.update(bucket_counts=list(dp.bucket_counts), explicit_bounds=list(dp.explicit_bounds),
                   min=dp.min if dp.HasField("min") else None, max=dp.max if dp.HasField("max") else None)
    elif kind == "exponential_histogram":
        out.update(scale=dp.scale, zero_count=dp.zero_count,
                   positive={"offset": dp.positive.offset, "bucket_counts": list(dp.positive.bucket_counts)},
                   negative={"offset": dp.negative.offset, "bucket_counts": list(dp.negative.bucket_counts)})
    elif kind == "summary":
        out["quantiles"] = [{"quantile": q.quantile, "value": q.value} for q in dp.quantile_values]
    return out
