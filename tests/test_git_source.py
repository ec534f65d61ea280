"""The git source on real repositories built with the real git binary: branches and merges, renames,
binary files, trailers, time zones, odd paths, incremental syncs, rewritten and garbage-collected
history, folders of clones, and errors."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from cclens.config import Settings
from cclens.errors import SourceError
from cclens.sources.git import (discover_repositories, normalise_remote, parse_trailers, repo_id_for, scrub_url,
                                sync_git, sync_repository)
from git_support import Repo

UTC = timezone.utc
CLAUDE_MESSAGE = """Add the parser

Parses the thing.

🤖 Generated with [Claude Code](https://claude.com/claude-code)

Co-Authored-By: Claude <noreply@anthropic.com>
"""


def commits(wh, **where) -> dict[str, dict]:
    clause = " AND ".join(f"{k} = ?" for k in where) or "TRUE"
    return {r["sha"]: r for r in wh.query(f"SELECT * FROM commit WHERE {clause}", list(where.values()))}


def files_of(wh, sha: str) -> dict[str, dict]:
    return {r["path"]: r for r in wh.query("SELECT * FROM commit_file WHERE sha = ?", [sha])}


def test_branches_merges_renames_binary_and_trailers(tmp_path, warehouse):
    repo = Repo(tmp_path / "app")
    c1 = repo.commit("Initial", {"README.md": "a\nb\nc\n", "src/old_name.py": "x = 1\ny = 2\n"})
    repo.checkout("feature/PROJ-7-parser", new=True)
    c2 = repo.commit(CLAUDE_MESSAGE, {"src/parser.py": "def parse():\n    return 1\n", "logo.png": b"\x89PNG\x00\x01\x02"})
    repo.git("mv", "src/old_name.py", "src/new_name.py")
    c3 = repo.commit("Rename module\n\nCo-authored-by: Grace Hopper <grace@example.com>\n",
                     {"README.md": "a\nB\nc\nd\n"})
    repo.checkout("main")
    c4 = repo.commit("Main moves on", {"CHANGES": "1\n"})
    m = repo.merge("feature/PROJ-7-parser")

    result = sync_repository(warehouse, repo.path)
    assert result.status == "ok" and result.new_commits == 5 and result.unreachable == 0
    rows = commits(warehouse)
    assert set(rows) == {c1, c2, c3, c4, m}
    # parents and merges: the merge has two parents and no diff of its own
    assert rows[m]["parents"] == [c4, c3] and rows[m]["is_merge"]
    assert rows[m]["files_changed"] is None and rows[m]["lines_added"] is None
    assert rows[c1]["parents"] == [] and not rows[c1]["is_merge"]
    assert rows[c4]["source_ref"] == "refs/heads/main"
    # binary file: counted as a changed file, no lines
    f2 = files_of(warehouse, c2)
    assert f2["logo.png"]["is_binary"] and f2["logo.png"]["lines_added"] is None
    assert (f2["src/parser.py"]["lines_added"], f2["src/parser.py"]["lines_deleted"]) == (2, 0)
    assert (rows[c2]["files_changed"], rows[c2]["lines_added"], rows[c2]["binary_files"]) == (2, 2, 1)
    # rename: the new path with the old one, and the modified README in the same commit
    f3 = files_of(warehouse, c3)
    assert f3["src/new_name.py"]["old_path"] == "src/old_name.py"
    assert (f3["src/new_name.py"]["lines_added"], f3["src/new_name.py"]["lines_deleted"]) == (0, 0)
    assert (f3["README.md"]["lines_added"], f3["README.md"]["lines_deleted"]) == (2, 1)
    # trailers and the Claude Code markers
    assert rows[c2]["claude_coauthor"] and rows[c2]["claude_marker"]
    assert rows[c2]["co_authors"] == ["Claude <noreply@anthropic.com>"]
    assert rows[c3]["co_authors"] == ["Grace Hopper <grace@example.com>"] and not rows[c3]["claude_coauthor"]
    assert not rows[c3]["claude_marker"] and not rows[c1]["claude_coauthor"]
    assert rows[c2]["subject"] == "Add the parser" and "Parses the thing." in rows[c2]["message"]
    # people: emails lower-cased, listed as git identities
    assert rows[c1]["author_email"] == "ada@example.com"
    ids = {r["identity"]: r for r in warehouse.query("SELECT * FROM eng_identity WHERE system = 'git'")}
    assert set(ids) == {"ada@example.com"} and ids["ada@example.com"]["display_name"] == "Ada Lovelace"
    repo_row = warehouse.query("SELECT * FROM repository")[0]
    assert repo_row["repo_id"] == f"local:{repo.path.resolve()}" and repo_row["default_branch"] == "main"


def test_timestamps_time_zones_and_odd_paths(tmp_path, warehouse):
    repo = Repo(tmp_path / "tz")
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    sha = repo.commit("Odd paths", {"dir with space/a\tb.txt": "1\n", "ünïcode/ファイル.md": "x\ny\n",
                                    "new\nline.txt": "z\n"}, when=when, tz="+0530",
                      author=("Bob", "bob@example.com"))
    sync_repository(warehouse, repo.path)
    row = commits(warehouse)[sha]
    assert row["author_ts"] == when and row["author_tz_min"] == 330 and row["committer_tz_min"] == 330
    assert row["author_email"] == "bob@example.com" and row["committer_email"] == "ada@example.com"
    assert set(files_of(warehouse, sha)) == {"dir with space/a\tb.txt", "ünïcode/ファイル.md", "new\nline.txt"}
    assert row["lines_added"] == 4


def test_incremental_sync_reads_only_new_commits(tmp_path, warehouse):
    repo = Repo(tmp_path / "inc")
    for i in range(5):
        repo.commit(f"c{i}", {"f.txt": f"{i}\n"})
    assert sync_repository(warehouse, repo.path).new_commits == 5
    assert sync_repository(warehouse, repo.path).new_commits == 0  # nothing changed: nothing read
    repo.commit("c5", {"f.txt": "5\n"})
    repo.checkout("topic", new=True)
    new = repo.commit("t0", {"g.txt": "t\n"})
    result = sync_repository(warehouse, repo.path)
    assert result.new_commits == 2 and result.files == 2
    assert warehouse.scalar("SELECT count(*) FROM commit") == 7
    assert warehouse.scalar("SELECT count(*) FROM commit_file") == 7
    assert commits(warehouse)[new]["source_ref"] == "refs/heads/topic"
    state = warehouse.query("SELECT * FROM source_state WHERE source LIKE 'git:%'")[0]
    assert state["last_error"] is None and state["last_rows"] == 2


def test_rewritten_history_is_marked_not_kept_live(tmp_path, warehouse):
    repo = Repo(tmp_path / "rw")
    base = repo.commit("base", {"f.txt": "0\n"})
    repo.checkout("feature", new=True)
    old = [repo.commit(f"wip {i}", {"f.txt": f"wip {i}\n"}) for i in range(3)]
    sync_repository(warehouse, repo.path)
    # rewrite: squash the branch into one commit (what a force push after a rebase looks like)
    repo.git("reset", "-q", "--soft", base)
    squashed = repo.commit("feature, squashed", {"f.txt": "done\n"})
    result = sync_repository(warehouse, repo.path)
    assert result.new_commits == 1 and result.unreachable == 3 and not result.full_rescan
    rows = commits(warehouse)
    assert all(not rows[s]["reachable"] and rows[s]["unreachable_at"] is not None for s in old)
    assert rows[squashed]["reachable"] and rows[base]["reachable"]
    # the old branch comes back (someone pushes it again): its commits are live again, not duplicated
    repo.git("branch", "restored", old[-1])
    result = sync_repository(warehouse, repo.path)
    assert result.revived == 3 and result.new_commits == 0
    rows = commits(warehouse)
    assert all(rows[s]["reachable"] and rows[s]["unreachable_at"] is None for s in old)
    assert warehouse.scalar("SELECT count(*) FROM commit") == 5
    # a deleted branch: its own commits become unreachable, shared history stays live
    repo.git("branch", "-D", "restored")
    assert sync_repository(warehouse, repo.path).unreachable == 3
    assert commits(warehouse)[base]["reachable"]


def test_garbage_collected_tips_force_a_full_reachability_check(tmp_path, warehouse):
    repo = Repo(tmp_path / "gc")
    repo.commit("base", {"f.txt": "0\n"})
    doomed = repo.commit("doomed", {"f.txt": "1\n"})
    sync_repository(warehouse, repo.path)
    repo.git("reset", "-q", "--hard", "HEAD~1")
    repo.git("reflog", "expire", "--expire=now", "--all")
    repo.git("gc", "-q", "--prune=now")
    with pytest.raises(AssertionError):
        repo.git("cat-file", "-e", doomed)  # really gone
    result = sync_repository(warehouse, repo.path)
    assert result.full_rescan and result.unreachable == 1
    assert not commits(warehouse)[doomed]["reachable"]


def test_tags_and_detached_head_keep_commits_reachable(tmp_path, warehouse):
    repo = Repo(tmp_path / "tags")
    repo.commit("base", {"f.txt": "0\n"})
    repo.checkout("rel", new=True)
    tagged = repo.commit("release", {"f.txt": "1\n"})
    repo.git("tag", "-a", "v1.0", "-m", "v1.0")
    repo.checkout("main")
    repo.git("branch", "-D", "rel")
    repo.git("checkout", "-q", "--detach", "main")
    detached = repo.commit("on a detached head", {"g.txt": "2\n"})
    sync_repository(warehouse, repo.path)
    rows = commits(warehouse)
    assert rows[tagged]["reachable"] and rows[tagged]["source_ref"] == "refs/tags/v1.0"
    assert rows[detached]["reachable"] and rows[detached]["source_ref"] == "HEAD"


def test_empty_repository_and_errors(tmp_path, warehouse):
    empty = Repo(tmp_path / "empty")
    assert sync_repository(warehouse, empty.path).new_commits == 0
    with pytest.raises(SourceError, match="not a git repository"):
        sync_repository(warehouse, tmp_path)
    with pytest.raises(SourceError, match="git_repos"):
        sync_git(Settings(), warehouse)
    with pytest.raises(SourceError, match="does not exist"):
        sync_git(Settings(git_repos=[tmp_path / "nope"]), warehouse)


def test_folder_of_clones_bare_repos_and_remotes(tmp_path, warehouse):
    root = tmp_path / "clones"
    a = Repo(root / "a")
    a.commit("a1", {"a.txt": "a\n"})
    a.git("remote", "add", "origin", "https://x-token:secret123@github.com/Acme/Api.git")
    b = Repo(root / "group" / "b")
    b.commit("b1", {"b.txt": "b\n"})
    b.git("remote", "add", "origin", "git@github.com:acme/web.git")
    Repo(root / "too" / "deep" / "c").commit("c1", {"c.txt": "c\n"})
    import subprocess

    subprocess.run(["git", "clone", "-q", "--bare", str(a.path), str(root / "a-mirror.git")], check=True)
    (root / "not-a-repo").mkdir()
    found = discover_repositories([root])
    assert [p.name for p in found] == ["a", "a-mirror.git", "b"]
    results = sync_git(Settings(git_repos=[root]), warehouse)
    assert {r.repo_id for r in results} == {"github.com/acme/api", "github.com/acme/web",
                                           f"local:{(root / 'a-mirror.git').resolve()}"}
    assert all(r.status == "ok" for r in results)
    repos = {r["repo_id"]: r for r in warehouse.query("SELECT * FROM repository")}
    assert repos["github.com/acme/api"]["remote_url"] == "https://github.com/Acme/Api.git"  # no token kept
    assert repos["github.com/acme/api"]["full_name"] == "Acme/Api"
    assert "secret123" not in str(warehouse.query("SELECT * FROM source_state"))


def test_one_broken_repository_does_not_stop_the_others(tmp_path, warehouse):
    good = Repo(tmp_path / "good")
    good.commit("g", {"g.txt": "g\n"})
    bad = Repo(tmp_path / "bad")
    bad.commit("b", {"b.txt": "b\n"})
    (bad.path / ".git" / "HEAD").write_text("garbage\n")
    results = {Path(r.path).name: r for r in sync_git(Settings(git_repos=[good.path, bad.path]), warehouse)}
    assert results["good"].status == "ok" and results["good"].new_commits == 1
    assert results["bad"].status == "error" and "bad" in results["bad"].error
    err = warehouse.query("SELECT last_error FROM source_state WHERE last_error IS NOT NULL")
    assert err and "bad" in err[0]["last_error"]


@pytest.mark.parametrize("url, expected", [
    ("git@github.com:Acme/API.git", ("github.com", "Acme/API")),
    ("https://token@github.com/Acme/API", ("github.com", "Acme/API")),
    ("ssh://git@github.com:22/Acme/API.git", ("github.com", "Acme/API")),
    ("http://127.0.0.1:8123/acme/app.git", ("127.0.0.1:8123", "acme/app")),
    ("https://gitlab.example.com/group/sub/proj.git", ("gitlab.example.com", "group/sub/proj")),
    ("/srv/git/app.git", (None, None)),
    ("file:///srv/git/app.git", (None, None)),
    ("../app", (None, None)),
    (None, (None, None)),
])
def test_normalise_remote(url, expected):
    assert normalise_remote(url) == expected


def test_repo_ids_and_scrubbing():
    assert repo_id_for("github.com", "Acme/API") == "github.com/acme/api"
    assert repo_id_for(None, None, Path("/x/y")) == "local:/x/y"
    assert scrub_url("https://user:pw@host.example/a/b.git") == "https://host.example/a/b.git"
    assert scrub_url("git@github.com:a/b.git") == "git@github.com:a/b.git"


@pytest.mark.parametrize("message, expected", [
    ("subject only", []),
    ("subject\n\nbody", []),
    ("subject\n\nCo-authored-by: A <a@x>\nSigned-off-by: B <b@x>", [("Co-authored-by", "A <a@x>"),
                                                                    ("Signed-off-by", "B <b@x>")]),
    ("subject\n\nbody\n\nFixes: PROJ-1\n  and more", [("Fixes", "PROJ-1 and more")]),
    ("subject\n\nsee https://example.com: no", []),
    ("subject\n\nNot a trailer line\nKey: v", []),
])
def test_parse_trailers(message, expected):
    assert parse_trailers(message) == expected
