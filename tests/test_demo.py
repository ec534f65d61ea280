"""``cclens demo`` builds its own warehouse through the real ingest paths, never touching the user's."""

from __future__ import annotations



def test_demo_fills_every_source_in_its_own_file(tmp_path):
    from cclens.cli import main
    from cclens.warehouse import open_warehouse

    user_db = tmp_path / "mine.duckdb"
    demo_db = tmp_path / "demo" / "demo.duckdb"
    assert main(["--db", str(user_db), "demo", "--people", "10", "--days", "10", "--demo-db", str(demo_db),
                 "--no-serve"]) == 0
    assert not user_db.exists()
    wh = open_warehouse(demo_db)
    try:
        q = wh.scalar
        assert q("SELECT count(*) FROM api_request WHERE from_transcripts") > 0
        assert q("SELECT count(*) FROM otel_event WHERE event_name = 'api_request'") > 0
        assert q("SELECT count(*) FROM landing_hook_event") > 0
        for table in ("cc_actor_day", "usage_bucket", "cost_day", "engagement_day", "person", "team"):
            assert q(f"SELECT count(*) FROM {table}") > 0, table
        assert q("SELECT count(*) FROM cc_actor_day WHERE actor_type = 'api_key'") > 0  # CI bots
        assert q("SELECT count(*) FROM membership WHERE team_id = 'ml'") > 0  # the Bedrock-only team
        assert q("SELECT count(*) FROM cc_daily WHERE model LIKE 'us.anthropic.%'") == 0
        assert q("SELECT count(*) FROM quarantine") == 0
    finally:
        wh.close()
    # same options: reused, not rebuilt
    assert main(["--db", str(user_db), "demo", "--people", "10", "--days", "10", "--demo-db", str(demo_db),
                 "--no-serve"]) == 0


def test_demo_refuses_the_users_warehouse(tmp_path):
    from cclens.cli import main

    db = tmp_path / "mine.duckdb"
    assert main(["--db", str(db), "demo", "--demo-db", str(db), "--no-serve"]) != 0
