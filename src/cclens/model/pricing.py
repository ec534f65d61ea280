"""The price table: bundled, versioned, overridable, refreshable from a LiteLLM-format file.

Prices are USD per million tokens. A model resolves to a table entry by exact name, alias, name
without a date or provider decoration (``claude-sonnet-4-5-20250929``, ``us.anthropic.…-v1:0``,
``…@20250929``), then the longest entry name that prefixes it. A model that resolves to nothing is
*unpriced*: reports show its tokens and say so, never $0.

Long-context pricing is request-level, as Anthropic bills it: when a request's input + cache tokens
exceed the threshold, all of that request's tokens are priced at the long-context rates. (ccusage
instead prices only the tokens above 200k at the higher rate; see docs/sources/transcripts.md.)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..errors import PricingError

_DATE_SUFFIX = re.compile(r"(-\d{8}|@\d{8}|-v\d+(:\d+)?|-latest)+$")
_PROVIDER_PREFIX = re.compile(r"^(?:[a-z]{2}\.)?(?:anthropic[./]|bedrock/|vertex_ai/|vertex/|claude/)+")
_KINDS = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")


@dataclass(frozen=True)
class Price:
    """One price-table entry (USD per million tokens)."""

    key: str
    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float
    long_context: dict[str, float] | None = None
    fast_multiplier: float | None = None


@dataclass
class PriceTable:
    """A versioned set of prices with alias resolution."""

    version: str
    prices: dict[str, Price]
    aliases: dict[str, str]

    def resolve(self, model: str | None) -> Price | None:
        """The entry that prices ``model``, or None when it is unpriced."""
        if not model:
            return None
        name = normalise_model(model).lower()
        for candidate in (name, _PROVIDER_PREFIX.sub("", name)):
            for probe in (candidate, _DATE_SUFFIX.sub("", candidate)):
                key = self.aliases.get(probe, probe)
                if key in self.prices:
                    return self.prices[key]
        base = _DATE_SUFFIX.sub("", _PROVIDER_PREFIX.sub("", name))
        best = None
        for key in self.prices:
            if base.startswith(key + "-") and (best is None or len(key) > len(best)):
                best = key
        return self.prices[best] if best else None

    def cost(self, model: str, *, input_tokens: int = 0, output_tokens: int = 0, cache_write_5m: int = 0,
             cache_write_1h: int = 0, cache_read: int = 0, speed: str | None = None) -> float | None:
        """Cost of one request in USD (None when the model is unpriced). Mirrors ``api_request_cost``."""
        p = self.resolve(model)
        if p is None:
            return None
        rates = {k: getattr(p, k) for k in _KINDS}
        if p.long_context and input_tokens + cache_write_5m + cache_write_1h + cache_read > p.long_context["threshold"]:
            rates = {k: p.long_context[k] for k in _KINDS}
        total = (input_tokens * rates["input"] + output_tokens * rates["output"]
                 + cache_write_5m * rates["cache_write_5m"] + cache_write_1h * rates["cache_write_1h"]
                 + cache_read * rates["cache_read"]) / 1e6
        if speed == "fast" and p.fast_multiplier:
            total *= p.fast_multiplier
        return total


def normalise_model(model: str) -> str:
    """Strip the context-window decoration Claude Code adds on metrics (``claude-opus-4-8[1m]``)."""
    return re.sub(r"\[[^\]]*\]$", "", model.strip())


def _entry(key: str, raw: dict[str, Any], origin: str) -> Price:
    try:
        inp = float(raw["input"])
        out = float(raw["output"])
        long = raw.get("long_context")
        return Price(
            key=key, input=inp, output=out,
            cache_write_5m=float(raw.get("cache_write_5m", inp * 1.25)),
            cache_write_1h=float(raw.get("cache_write_1h", inp * 2)),
            cache_read=float(raw.get("cache_read", inp * 0.1)),
            long_context={k: float(v) for k, v in long.items()} if long else None,
            fast_multiplier=float(raw["fast_multiplier"]) if raw.get("fast_multiplier") else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PricingError(f"price entry {key!r} in {origin} is invalid ({exc}); each entry needs "
                           "numeric 'input' and 'output' (USD per million tokens)") from None


def parse_table(doc: dict[str, Any], origin: str) -> PriceTable:
    """Build a PriceTable from our JSON format (see ``data/prices.json``)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), dict):
        raise PricingError(f"{origin} is not a cclens price table (no 'models' object)")
    prices: dict[str, Price] = {}
    aliases: dict[str, str] = {}
    for key, raw in doc["models"].items():
        k = key.lower()
        prices[k] = _entry(k, raw, origin)
        for alias in raw.get("aliases", []) or []:
            aliases[str(alias).lower()] = k
    return PriceTable(version=str(doc.get("version", "unknown")), prices=prices, aliases=aliases)


def bundled_table() -> PriceTable:
    """The price table shipped with this version of cclens."""
    # a plain file next to the package (importlib.resources costs ~10 ms of imports on every CLI run)
    text = (Path(__file__).resolve().parent.parent / "data" / "prices.json").read_text(encoding="utf-8")
    return parse_table(json.loads(text), "the bundled price table")


def load_table(path: Path | None = None, overrides: dict[str, dict[str, float]] | None = None) -> PriceTable:
    """The effective table: ``path`` (or the bundled one), then per-model ``overrides`` on top."""
    if path:
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise PricingError(f"cannot read price table {path}: {exc}") from None
        table = parse_table(doc, str(path))
    else:
        table = bundled_table()
    for key, raw in (overrides or {}).items():
        k = key.lower()
        base = table.prices.get(k)
        merged = {**(base.__dict__ if base else {}), **raw}
        merged.pop("key", None)
        table.prices[k] = _entry(k, merged, "price_overrides")
    if overrides:
        table.version += "+overrides"
    return table


def from_litellm(doc: dict[str, Any], *, version: str) -> dict[str, Any]:
    """Convert a LiteLLM ``model_prices_and_context_window.json`` to our format (Claude models only).

    LiteLLM gives USD per token; we store USD per million tokens. ``*_above_200k_tokens`` fields become
    the long-context tier; ``provider_specific_entry.fast`` the fast multiplier.
    """
    out: dict[str, Any] = {}
    for name, raw in doc.items():
        if not isinstance(raw, dict) or "claude" not in name.lower():
            continue
        if raw.get("input_cost_per_token") is None or raw.get("output_cost_per_token") is None:
            continue
        key = _DATE_SUFFIX.sub("", _PROVIDER_PREFIX.sub("", name.lower()))
        if key in out and "/" in name:  # prefer the plain Anthropic entry over provider copies
            continue
        mt = lambda v: round(float(v) * 1e6, 6)  # noqa: E731
        inp = mt(raw["input_cost_per_token"])
        entry: dict[str, Any] = {
            "input": inp, "output": mt(raw["output_cost_per_token"]),
            "cache_write_5m": mt(raw.get("cache_creation_input_token_cost", raw["input_cost_per_token"] * 1.25)),
            "cache_write_1h": mt(raw.get("cache_creation_input_token_cost_above_1hr",
                                         raw["input_cost_per_token"] * 2)),
            "cache_read": mt(raw.get("cache_read_input_token_cost", raw["input_cost_per_token"] * 0.1)),
            "aliases": sorted({name.lower()} - {key}),
        }
        if raw.get("input_cost_per_token_above_200k_tokens"):
            li = mt(raw["input_cost_per_token_above_200k_tokens"])
            entry["long_context"] = {
                "threshold": 200000, "input": li,
                "output": mt(raw.get("output_cost_per_token_above_200k_tokens", raw["output_cost_per_token"])),
                "cache_write_5m": mt(raw.get("cache_creation_input_token_cost_above_200k_tokens", li * 1.25e-6)),
                "cache_write_1h": li * 2,
                "cache_read": mt(raw.get("cache_read_input_token_cost_above_200k_tokens", li * 0.1e-6)),
            }
        fast = (raw.get("provider_specific_entry") or {}).get("fast")
        if isinstance(fast, (int, float)) and fast > 0:
            entry["fast_multiplier"] = float(fast)
        if key in out:
            out[key]["aliases"] = sorted(set(out[key]["aliases"]) | {name.lower()})
        else:
            out[key] = entry
    if not out:
        raise PricingError("the LiteLLM file holds no Claude model with input and output prices")
    return {"version": version, "unit": "USD per million tokens", "source": "LiteLLM import", "models": out}


PRICE_COLUMNS = ("model", "price_key", "input_per_mtok", "output_per_mtok", "cache_write_5m_per_mtok",
                 "cache_write_1h_per_mtok", "cache_read_per_mtok", "long_context_threshold", "long_input_per_mtok",
                 "long_output_per_mtok", "long_cache_write_5m_per_mtok", "long_cache_write_1h_per_mtok",
                 "long_cache_read_per_mtok", "fast_multiplier", "table_version")
_PRICE_TYPES = ["VARCHAR", "VARCHAR"] + ["DOUBLE"] * 5 + ["BIGINT"] + ["DOUBLE"] * 6 + ["VARCHAR"]


def price_rows(table: PriceTable, models: Iterable[str]) -> list[list[Any]]:
    """One ``model_price`` row (values in :data:`PRICE_COLUMNS` order) per model; unpriced → NULL prices."""
    rows = []
    for model in sorted(set(m for m in models if m is not None)):
        p = table.resolve(model)
        lc = p.long_context if p else None
        rows.append([model, p.key if p else None,
                     p.input if p else None, p.output if p else None, p.cache_write_5m if p else None,
                     p.cache_write_1h if p else None, p.cache_read if p else None,
                     int(lc["threshold"]) if lc else None, lc["input"] if lc else None,
                     lc["output"] if lc else None, lc["cache_write_5m"] if lc else None,
                     lc["cache_write_1h"] if lc else None, lc["cache_read"] if lc else None,
                     p.fast_multiplier if p else None, table.version])
    return rows


# Cost of each request (request-level long context, fast mode). Used by the api_request_cost view over
# the model_price table, and by reports over an inline model_price CTE: one definition of cost.
COST_SELECT = """
SELECT r.*,
       p.price_key,
       (r.input_tokens + r.cache_creation_tokens + r.cache_read_tokens) > coalesce(p.long_context_threshold, 9e18)
           AS long_context,
       CASE WHEN p.price_key IS NULL THEN NULL ELSE (
         CASE WHEN (r.input_tokens + r.cache_creation_tokens + r.cache_read_tokens) > coalesce(p.long_context_threshold, 9e18)
         THEN r.input_tokens * p.long_input_per_mtok
            + r.output_tokens * p.long_output_per_mtok
            + coalesce(r.cache_creation_5m_tokens, r.cache_creation_tokens - coalesce(r.cache_creation_1h_tokens, 0)) * p.long_cache_write_5m_per_mtok
            + coalesce(r.cache_creation_1h_tokens, 0) * p.long_cache_write_1h_per_mtok
            + r.cache_read_tokens * p.long_cache_read_per_mtok
         ELSE r.input_tokens * p.input_per_mtok
            + r.output_tokens * p.output_per_mtok
            + coalesce(r.cache_creation_5m_tokens, r.cache_creation_tokens - coalesce(r.cache_creation_1h_tokens, 0)) * p.cache_write_5m_per_mtok
            + coalesce(r.cache_creation_1h_tokens, 0) * p.cache_write_1h_per_mtok
            + r.cache_read_tokens * p.cache_read_per_mtok
         END * CASE WHEN r.speed = 'fast' THEN coalesce(p.fast_multiplier, 1) ELSE 1 END / 1e6
       ) END AS cost_usd
FROM api_request r LEFT JOIN model_price p ON p.model = r.model
"""


def priced_requests_cte(table: PriceTable, models: Iterable[str]) -> tuple[str, list[Any]]:
    """``WITH model_price AS (…), api_request_cost AS (…)`` pricing with ``table`` inside one read-only
    query, so a report works through a running server and honours local overrides. Returns the SQL
    prefix and its parameters; the caller appends its SELECT over ``api_request_cost``."""
    rows = price_rows(table, models) or [[None] * len(PRICE_COLUMNS)]
    first = "(" + ", ".join(f"CAST(? AS {t})" for t in _PRICE_TYPES) + ")"
    values = ", ".join([first] + ["(" + ", ".join("?" * len(_PRICE_TYPES)) + ")"] * (len(rows) - 1))
    sql = (f"WITH model_price({', '.join(PRICE_COLUMNS)}) AS (VALUES {values}), "
           f"api_request_cost AS ({COST_SELECT}) ")
    return sql, [v for row in rows for v in row]


def sync_model_prices(wh, table: PriceTable, models: Iterable[str] | None = None) -> None:
    """Rewrite ``model_price`` so that every model in ``api_request`` (or ``models``) has its row, for the
    ``api_request_cost`` view. Unpriced models get NULL prices so the view yields NULL cost."""
    if models is None:
        models = [r["model"] for r in wh.query("SELECT DISTINCT model FROM api_request WHERE model IS NOT NULL")]
    rows = price_rows(table, models)
    current = [list(r.values()) for r in wh.query("SELECT * FROM model_price ORDER BY model")]
    if current == rows:
        return  # nothing changed: no write
    with wh.transaction():
        wh.execute("DELETE FROM model_price")
        for row in rows:
            wh.execute("INSERT INTO model_price VALUES (" + ", ".join("?" * len(row)) + ")", row)


def imported_table_path() -> Path:
    """Where ``cclens prices import`` stores a refreshed table (used unless ``price_table`` is set)."""
    from ..config import data_dir

    return data_dir() / "prices.json"


def effective_table(settings) -> PriceTable:
    """The table reports use: ``settings.price_table``, else an imported table, else the bundled one;
    then ``settings.price_overrides`` on top."""
    path = settings.price_table
    if path is None and imported_table_path().is_file():
        path = imported_table_path()
    return load_table(path, settings.price_overrides)


_CURRENT: PriceTable | None = None


def current_table() -> PriceTable:
    """The effective table for this process's settings, loaded once (for read paths without settings)."""
    global _CURRENT
    if _CURRENT is None:
        from ..config import load_settings

        _CURRENT = effective_table(load_settings())
    return _CURRENT
