"""Period reports sum requests per UTC quarter hour before putting them in the zone: the days, weeks and
months must be exactly those of putting every request in the zone, wherever the requests fall."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from cclens.metrics import usage
from cclens.model.pricing import bundled_table

ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe", "America/St_Johns",
         "Pacific/Chatham", "Asia/Kolkata", "Pacific/Kiritimati", "Pacific/Pago_Pago"]


def _edge_instants() -> list[datetime]:
    """Instants on both sides of local midnights and of DST changes in every zone above (to the
    microsecond), plus a spread over a year."""
    from zoneinfo import ZoneInfo

    out = []
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i in range(0, 365 * 24, 7):  # every 7 hours through the year
        out.append(start + timedelta(hours=i, minutes=(i * 13) % 60, seconds=i % 60))
    for name in ZONES:
        zone = ZoneInfo(name)
        for day in (datetime(2026, 3, 8), datetime(2026, 3, 29), datetime(2026, 4, 5), datetime(2026, 9, 27),
                    datetime(2026, 10, 4), datetime(2026, 10, 25), datetime(2026, 11, 1), datetime(2026, 12, 31)):
            midnight = day.replace(tzinfo=zone).astimezone(timezone.utc)
            for delta in (-1, 0, 1, 899_999, 900_000, -900_000):
                out.append(midnight + timedelta(microseconds=delta))
            for hour in (1, 2, 3):  # DST changes happen at these local hours
                change = day.replace(hour=hour, tzinfo=zone).astimezone(timezone.utc)
                out += [change - timedelta(microseconds=1), change]
    return out


@pytest.fixture(scope="module")
def requests(tmp_path_factory):
    from cclens.warehouse import open_warehouse

    wh = open_warehouse(tmp_path_factory.mktemp("periods") / "wh.duckdb")
    models = ["claude-sonnet-4-5-20250929", "claude-opus-4-1", "mystery-model"]
    instants = _edge_instants()
    wh.execute("""
        INSERT INTO api_request (request_key, ts, model, input_tokens, output_tokens, cache_creation_tokens,
                                 cache_read_tokens, from_transcripts)
        SELECT 'r' || i, ts, (?::VARCHAR[])[1 + i % 3], 10 + i % 7, 5, 3 * (i % 2), 7, TRUE
        FROM (SELECT unnest(?::TIMESTAMPTZ[]) AS ts, generate_subscripts(?::TIMESTAMPTZ[], 1) AS i)""",
               [models, instants, instants])
    yield wh
    wh.close()


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("period", ["daily", "weekly", "monthly"])
def test_quarter_hours_give_the_days_of_every_request(requests, zone, period):
    flt = usage.ReportFilter(prices=bundled_table(), tz=zone)
    got = usage.period_report(requests, period, flt)
    # the reference: every request put in the zone on its own
    where, params = flt.where()
    cte, cte_params = usage._priced(requests, flt)
    ref = requests.query(cte + f"""
        SELECT {usage.PERIODS[period]} AS k, coalesce(model, 'unknown') AS model,
               sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
               sum(cache_creation_tokens) AS cache_creation_tokens, sum(cache_read_tokens) AS cache_read_tokens,
               CASE WHEN bool_or(cost_usd IS NULL) THEN NULL ELSE sum(cost_usd) END AS cost_usd,
               count(*) AS requests
        FROM api_request_cost WHERE {where} GROUP BY 1, 2 ORDER BY 1, 2""", [*cte_params, zone, *params])
    expected = usage._group(ref, "k", usage.PERIOD_KEY[period])
    assert len(got) == len(expected) > 1
    for g, e in zip(got, expected):
        assert g["unpriced_models"] == e["unpriced_models"]
        assert {k: v for k, v in g.items() if k not in ("cost_usd", "models")} == \
            {k: v for k, v in e.items() if k not in ("cost_usd", "models")}
        for gm, em in zip([g, *g["models"]], [e, *e["models"]]):
            assert {k: v for k, v in gm.items() if k not in ("cost_usd", "models")} == \
                {k: v for k, v in em.items() if k not in ("cost_usd", "models")}
            assert (gm["cost_usd"] is None) == (em["cost_usd"] is None)
            if gm["cost_usd"] is not None:  # the same sums, added in another order
                assert gm["cost_usd"] == pytest.approx(em["cost_usd"], rel=1e-12)


def test_since_and_until_still_cut_on_local_days(requests):
    flt = usage.ReportFilter(prices=bundled_table(), tz="Asia/Kathmandu", since=datetime(2026, 3, 29).date(),
                             until=datetime(2026, 3, 29).date())
    rows = usage.period_report(requests, "daily", flt)
    assert [r["date"] for r in rows] == ["2026-03-29"]
