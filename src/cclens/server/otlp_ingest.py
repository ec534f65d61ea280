"""What OTLP/HTTP and OTLP/gRPC share: decode, admit, spool, model.

:class:`OtlpIngest` decodes a request (400 if it cannot), refuses it when the server is overloaded
(429: too many requests in flight; 503: the spool holds more than its limit), appends it to the
write-ahead spool and returns a future that resolves once the bytes are fsynced: only then may the
receiver acknowledge. The writer thread later models spooled requests with
:class:`cclens.model.otel.OtelModeller`.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import tempfile
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..config import Settings
from ..model.otel import OtelModeller, OtlpRequest
from ..sources.otlp import REQUEST_TYPES, Decoded, OtlpDecodeError, decode
from .spool import Spool, SpoolEntry, SpoolFull
from .writer import Writer

log = logging.getLogger("cclens.server.otlp")

MAX_BODY_BYTES = 32 << 20          # compressed or not, per request (413 above)
MAX_DECOMPRESSED_BYTES = 64 << 20  # after gunzip (413 above: zip bombs)
MAX_INFLIGHT = 256                 # requests between receipt and acknowledgement (429 above)
RETRY_AFTER_S = 2


class Overloaded(Exception):
    """The server cannot take this request now. ``status`` is 429 or 503; retry after ``retry_after``."""

    def __init__(self, status: int, message: str, retry_after: int = RETRY_AFTER_S):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass
class Accepted:
    request_id: str
    decoded: Decoded
    durable: "Future[Any]"


def spool_dir_for(settings: Settings) -> Path:
    """``<warehouse>.spool/`` next to the warehouse file (a temporary directory for ``:memory:``)."""
    db = str(settings.db)
    if db == ":memory:":
        return Path(tempfile.mkdtemp(prefix="cclens-spool-"))
    return Path(db).expanduser().with_name(Path(db).name + ".spool")


class OtlpIngest:
    """The OTLP pipeline of one server: limits, spool, modeller."""

    def __init__(self, settings: Settings, writer: Writer, *, spool_dir: Path | None = None,
                 max_body_bytes: int = MAX_BODY_BYTES, max_decompressed_bytes: int = MAX_DECOMPRESSED_BYTES,
                 max_inflight: int = MAX_INFLIGHT, max_backlog_bytes: int = 512 << 20):
        self.settings = settings
        self.writer = writer
        self.max_body_bytes = max_body_bytes
        self.max_decompressed_bytes = max_decompressed_bytes
        self.max_inflight = max_inflight
        self.modeller = OtelModeller(capture_content=settings.capture_content, price_sync=self._price_sync)
        self.spool = Spool(spool_dir or spool_dir_for(settings), "otlp", apply=self._apply,
                           quarantine=self._quarantine, on_commit=self.modeller.committed,
                           on_rollback=self.modeller.rolled_back, max_backlog_bytes=max_backlog_bytes)
        self.spool.wake = writer.wake
        writer.add_source(self.spool)
        self._inflight = 0
        self._lock = threading.Lock()
        self._prices = None
        self.counts = {"accepted": 0, "rejected_records": 0, "bad_requests": 0, "overloaded": 0}

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self.spool.open(self.writer.wh)

    def stop(self) -> None:
        self.spool.close()

    def health(self) -> dict[str, Any]:
        return {**self.spool.stats(), **self.counts, "inflight": self._inflight}

    # -- the receive path (any thread) ---------------------------------------------------------
    def admit(self) -> None:
        """Count one more request in flight, or raise :class:`Overloaded`. Pair with :meth:`release`."""
        with self._lock:
            if self._inflight >= self.max_inflight:
                self.counts["overloaded"] += 1
                raise Overloaded(429, f"more than {self.max_inflight} OTLP requests are in flight")
            if self.spool.overloaded:
                self.counts["overloaded"] += 1
                raise Overloaded(503, "the write-ahead spool is over its limit; the warehouse is catching up",
                                 retry_after=5)
            self._inflight += 1

    def release(self) -> None:
        with self._lock:
            self._inflight -= 1

    def accept(self, signal: str, body: bytes, fmt: str, *, receiver: str, content_type: str | None = None,
               content_encoding: str | None = None, user_agent: str | None = None, peer: str | None = None,
               token_id: str | None = None) -> Accepted:
        """Decode and spool one request. Raises OtlpDecodeError (400) or Overloaded (429/503)."""
        try:
            decoded = decode(signal, body, fmt)
        except Exception:
            self.counts["bad_requests"] += 1
            raise
        if decoded.records == 0 and decoded.rejected:
            self.counts["bad_requests"] += 1
            raise OtlpDecodeError(f"no record could be decoded; {decoded.error}")
        request_id = uuid.uuid4().hex
        self.counts["rejected_records"] += decoded.rejected
        done: Future = Future()
        if decoded.records == 0:  # nothing to keep (an empty export, or every record rejected)
            done.set_result(None)
            return Accepted(request_id, decoded, done)
        pb = body if fmt == "protobuf" else decoded.message.SerializeToString()
        meta = {"request_id": request_id, "signal": signal, "receiver": receiver, "received_at": time.time(),
                "fmt": fmt, "pb_len": len(pb), "sha": hashlib.sha256(body).hexdigest(),
                "records": decoded.records, "rejected": decoded.rejected, "content_type": content_type,
                "content_encoding": content_encoding, "user_agent": user_agent, "peer": peer,
                "token_id": token_id}
        fut = self.spool.append(meta, pb if fmt == "protobuf" else pb + body, obj=decoded.message)
        if fut.done() and isinstance(fut.exception(), SpoolFull):
            self.counts["overloaded"] += 1
            raise Overloaded(503, str(fut.exception()), retry_after=5)
        self.counts["accepted"] += 1
        return Accepted(request_id, decoded, fut)

    # -- the writer's side ---------------------------------------------------------------------
    def _apply(self, wh: Any, entries: Sequence[SpoolEntry]) -> None:
        reqs = []
        for e in entries:
            m = e.meta
            msg, e.obj = e.obj, None  # the decoded message is used once: modelling may redact it in place
            pb_len = m.get("pb_len", len(e.body))
            if msg is None:
                msg = REQUEST_TYPES[m["signal"]].FromString(e.body[:pb_len])
            raw = e.body if m.get("fmt") == "protobuf" else e.body[pb_len:]
            reqs.append(OtlpRequest(
                request_id=m["request_id"], signal=m["signal"], receiver=m["receiver"],
                received_at=m["received_at"], message=msg, raw=raw, raw_format=m.get("fmt", "protobuf"),
                body_sha256=m["sha"], records=m.get("records", 0), rejected=m.get("rejected", 0),
                content_type=m.get("content_type"), content_encoding=m.get("content_encoding"),
                user_agent=m.get("user_agent"), peer=m.get("peer"), token_id=m.get("token_id"),
                spool_segment=e.segment, spool_offset=e.offset))
        self.modeller.model_requests(wh, reqs)

    def _quarantine(self, wh: Any, entry: SpoolEntry, reason: str) -> None:
        m = entry.meta
        raw = entry.body  # whole: the spool entry is gone once this commits
        wh.execute("INSERT INTO quarantine (source, origin, byte_offset, reason, raw, received_at) "
                   "VALUES ('otlp', ?, ?, ?, ?, now())",
                   [f"{m.get('receiver')} request {m.get('request_id')} ({m.get('signal')})", entry.offset,
                    reason[:2000], base64.b64encode(raw).decode()])

    def _price_sync(self, wh: Any) -> None:
        from ..model.pricing import effective_table, sync_model_prices

        if self._prices is None:
            try:
                self._prices = effective_table(self.settings)
            except Exception as exc:  # a broken price table must not stop ingestion
                log.warning("cannot load the price table (%s); OTel requests stay unpriced", exc)
                self._prices = False
        if self._prices:
            sync_model_prices(wh, self._prices)
