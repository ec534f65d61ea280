"""Git sync: first and incremental sync of a generated repository (default 100,000 commits).

The repository is generated with ``git fast-import`` (seconds, not minutes): a main line with feature
branches merged back, a few hundred small files, renames, binary files, co-author trailers. Then:

1. first sync (every commit, every file change);
2. incremental sync after 50 new commits on two branches;
3. incremental sync after a force push that rewrites the last 20 commits of a branch;
4. a no-op sync (nothing changed).

Targets (issue 9): first sync under 60 s, incremental under 2 s. Usage::

    .venv/bin/python bench/git.py                 # 100,000 commits
    .venv/bin/python bench/git.py --commits 20000 --no-write
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _machine import machine_line, write_section  # noqa: E402

from cclens.model.lineage import rebuild_lineage  # noqa: E402
from cclens.sources.git import sync_repository  # noqa: E402
from cclens.warehouse import open_warehouse  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
PEOPLE = [(f"Dev {i}", f"dev{i}@example.com") for i in range(40)]
BASE_TS = 1_700_000_000


def _data(text: bytes) -> bytes:
    return b"data %d\n" % len(text) + text + b"\n"


def fast_import_stream(n: int, seed: int = 7) -> bytes:
    """A fast-import stream of ``n`` commits: main plus feature branches merged back every ~20 commits."""
    rnd = random.Random(seed)
    files: dict[str, list[bytes]] = {}
    out = bytearray()
    mark = 0
    main_tip = None
    ts = BASE_TS
    i = 0
    while i < n:
        on_branch = main_tip is not None and rnd.random() < 0.5
        branch = f"refs/heads/feature/f{i}" if on_branch else "refs/heads/main"
        parent = main_tip
        length = rnd.randint(2, 6) if on_branch else 1
        replay = bytearray()  # a merge commit's tree is its first parent's plus these commands
        for _ in range(length):
            if i >= n:
                break
            i += 1
            mark += 1
            ts += rnd.randint(20, 400)
            name, email = rnd.choice(PEOPLE)
            msg = f"change {i}: update things\n\nSome words about change {i}.\n".encode()
            if rnd.random() < 0.2:
                msg += b"\nCo-Authored-By: Claude <noreply@anthropic.com>\n"
            out += f"commit {branch}\nmark :{mark}\n".encode()
            out += f"author {name} <{email}> {ts} +0100\ncommitter {name} <{email}> {ts} +0100\n".encode()
            out += _data(msg)
            if parent is not None:
                out += f"from :{parent}\n".encode()
            ops = bytearray()
            for _ in range(rnd.randint(1, 3)):
                roll = rnd.random()
                if files and roll < 0.03:
                    old = rnd.choice(list(files))
                    new = f"moved/{i}/{old.rsplit('/', 1)[-1]}"
                    files[new] = files.pop(old)
                    ops += f"R {old} {new}\n".encode()
                    continue
                if roll < 0.05:
                    path = f"assets/blob{rnd.randint(0, 50)}.bin"
                    ops += f"M 100644 inline {path}\n".encode() + _data(bytes(rnd.getrandbits(8) for _ in range(64)))
                    continue
                path = f"src/mod{rnd.randint(0, 400)}/file{rnd.randint(0, 3)}.py" if roll < 0.9 or not files \
                    else rnd.choice(list(files))
                lines = files.setdefault(path, [])
                for _ in range(rnd.randint(1, 8)):
                    if lines and rnd.random() < 0.3:
                        lines.pop(rnd.randrange(len(lines)))
                    lines.insert(rnd.randint(0, len(lines)), f"v{rnd.randrange(10**6)} = {i}\n".encode())
                del lines[40:]
                ops += f"M 100644 inline {path}\n".encode() + _data(b"".join(lines))
            out += ops
            replay += ops
            parent = mark
        if on_branch:
            i += 1
            mark += 1
            ts += 30
            out += f"commit refs/heads/main\nmark :{mark}\n".encode()
            out += f"author Merger <merge@example.com> {ts} +0000\ncommitter Merger <merge@example.com> {ts} +0000\n".encode()
            out += _data(f"Merge {branch}\n".encode()) + f"from :{main_tip}\nmerge :{parent}\n".encode() + replay
            main_tip = mark
            out += f"reset {branch}\nfrom 0000000000000000000000000000000000000000\n".encode()
        else:
            main_tip = parent
    out += b"done\n"
    return bytes(out)


def git(repo: Path, *args: str, input: bytes | None = None) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], input=input, capture_output=True)
    if proc.returncode:
        sys.exit(f"git {' '.join(args)} failed: {proc.stderr.decode()[-2000:]}")
    return proc.stdout.decode()


def commit_some(repo: Path, branch: str, count: int, tag: str) -> None:
    git(repo, "checkout", "-q", "-B", branch)
    for k in range(count):
        (repo / f"bench_{tag}.txt").write_text(f"{tag} {k}\n" * (k + 1))
        git(repo, "add", f"bench_{tag}.txt")
        git(repo, "commit", "-q", "-m", f"{tag} {k}")


def add_sessions(wh, repo: Path) -> tuple[int, int]:
    """Claude Code sessions working in the clone: one per 50 commits (spanning them), and a Bash tool
    call around every fifth commit, as transcripts would record them (no content: inference only)."""
    import pyarrow as pa

    times = [r["committer_ts"] for r in wh.query("SELECT committer_ts FROM commit WHERE NOT is_merge "
                                                  "ORDER BY committer_ts")]
    cwd = str(repo.resolve())
    sessions = {"session_id": [], "cwd": [], "first_ts": [], "last_ts": [], "git_branch": []}
    calls = {"tool_use_id": [], "session_id": [], "ts": [], "tool_name": [], "result_ts": [], "source": []}
    for i in range(0, len(times), 50):
        sid = f"bench-session-{i // 50}"
        chunk = times[i:i + 50]
        for k, v in (("session_id", sid), ("cwd", cwd), ("first_ts", chunk[0] - timedelta(seconds=5)),
                     ("last_ts", chunk[-1] + timedelta(seconds=5)), ("git_branch", "main")):
            sessions[k].append(v)
        for j in range(0, len(chunk), 5):
            for k, v in (("tool_use_id", f"toolu_{i + j}"), ("session_id", sid),
                         ("ts", chunk[j] - timedelta(seconds=1)), ("tool_name", "Bash"),
                         ("result_ts", chunk[j] + timedelta(seconds=1)), ("source", "transcripts")):
                calls[k].append(v)
    wh.append("session", pa.table(sessions))
    wh.append("tool_use", pa.table(calls))
    return len(sessions["session_id"]), len(calls["tool_use_id"])


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commits", type=int, default=100_000)
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cclens-bench-git-") as tmp:
        repo = Path(tmp) / "repo"
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
        git(repo, "config", "user.email", "bench@example.com")
        git(repo, "config", "user.name", "Bench")
        t_gen, stream = timed(lambda: fast_import_stream(args.commits))
        t_imp, _ = timed(lambda: git(repo, "fast-import", "--quiet", input=stream))
        git(repo, "checkout", "-q", "-f", "main")
        total = int(git(repo, "rev-list", "--all", "--count"))
        wh = open_warehouse(Path(tmp) / "wh.duckdb")
        rows = []
        t, r = timed(lambda: sync_repository(wh, repo))
        rows.append(("first sync", t, r.new_commits, r.files, r.unreachable))
        commit_some(repo, "main", 30, "a")
        commit_some(repo, "feature/bench", 20, "b")
        t, r = timed(lambda: sync_repository(wh, repo))
        rows.append(("incremental: 50 new commits on 2 branches", t, r.new_commits, r.files, r.unreachable))
        git(repo, "reset", "-q", "--hard", "HEAD~20")
        commit_some(repo, "feature/bench", 5, "c")
        t, r = timed(lambda: sync_repository(wh, repo))
        rows.append(("incremental: force push (20 rewritten, 5 new)", t, r.new_commits, r.files, r.unreachable))
        t, r = timed(lambda: sync_repository(wh, repo))
        rows.append(("incremental: nothing changed", t, r.new_commits, r.files, r.unreachable))
        n_sessions, n_calls = add_sessions(wh, repo)
        t, links = timed(lambda: rebuild_lineage(wh))
        lineage_row = (t, n_sessions, n_calls, sum(links.values()))
        stored = wh.scalar("SELECT count(*) FROM commit WHERE reachable")
        files = wh.scalar("SELECT count(*) FROM commit_file")
        wh.close()
    lines = [f"Machine: {machine_line()}.", "",
             f"Repository: {total:,} commits generated with `git fast-import` ({t_gen:.1f} s to generate the "
             f"stream, {t_imp:.1f} s to import); {files:,} file changes stored, {stored:,} reachable commits at the end.",
             "", "| run | wall | commits loaded | file rows | marked unreachable |", "|---|---:|---:|---:|---:|"]
    for name, t, c, f, u in rows:
        lines.append(f"| {name} | {t:.2f} s | {c:,} | {f:,} | {u:,} |")
    t, n_sessions, n_calls, n_links = lineage_row
    lines += ["", f"Lineage rebuild over it (`rebuild_lineage`, inferred links only: {n_sessions:,} sessions in the "
              f"clone, {n_calls:,} Bash tool calls, one at every fifth commit): {t:.2f} s, {n_links:,} links.",
              "", "Targets: first sync < 60 s, incremental < 2 s (`bench/git.py`)."]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section(str(DOCS), "Git sync", body)


if __name__ == "__main__":
    main()
