"""The git source: commits of local clones, on every branch, incrementally.

::

    results = sync_git(settings, wh)                 # every repository under settings.git_repos
    result = sync_repository(wh, Path("~/src/api"))  # one clone

What it promises, per repository:

- **All branches.** Commits reachable from local branches, remote-tracking branches, tags and HEAD
  (not stashes or notes), each with author, committer, both timestamps (UTC, plus the UTC offset),
  parents, the full message, its trailers (``Co-authored-by: Claude …``) and the "Generated with
  Claude Code" marker, and per-file line counts (``git log --numstat -M``: renames keep their old
  path, binary files count as changed files with no lines). Merge commits carry no diff (git shows
  none by default), so lines are never counted twice.
- **One stream.** A single ``git log`` process is read in blocks and parsed in bulk; rows are loaded
  through Arrow in batches, in one transaction per repository together with the cursor.
- **Incremental.** The cursor (``source_state`` ``git:<repo_id>``) keeps the tips seen last time; the
  next run lists only commits reachable from the current refs and not from those tips.
- **Rewritten history.** Commits that the old tips reached and no current ref does (a force push, a
  deleted branch) are marked ``reachable = false`` with ``unreachable_at``, never silently kept as
  live; a commit that becomes reachable again is marked live again. When an old tip no longer exists
  (garbage-collected), reachability is recomputed from ``git rev-list`` in full.

Paths in ``settings.git_repos`` may be clones (working trees or bare) or folders holding clones
(searched two levels deep). Errors name the repository and what to do; one bad repository does not
stop the others.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator
from urllib.parse import urlsplit

import orjson
import pyarrow as pa

from ..errors import SourceError

UTC = timezone.utc
REF_PATTERNS = ("refs/heads", "refs/remotes", "refs/tags")
BATCH_COMMITS = 20_000
_READ_BLOCK = 1 << 22
# One record per commit: RS, then fields separated by US, then NUL, then the numstat entries.
_FIELDS = ("%H", "%P", "%S", "%an", "%ae", "%ad", "%cn", "%ce", "%cd", "%B")
LOG_FORMAT = "%x1e" + "%x1f".join(_FIELDS) + "%x1f"
_TRAILER_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]*)\s*:\s*(.+?)\s*$")
_CLAUDE_COAUTHOR_RE = re.compile(r"\bclaude\b|noreply@anthropic\.com", re.I)
_CLAUDE_MARKER_RE = re.compile(r"generated with \[?claude code", re.I)
_SHA_RE = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_SCP_REMOTE_RE = re.compile(r"^(?:[^@/]+@)?([^:/]+):(?!//)(.+)$")


# -- discovery and identity ---------------------------------------------------------------------------
def is_repository(path: Path) -> bool:
    """True when ``path`` is a working tree (has ``.git``) or a bare repository."""
    if (path / ".git").exists():
        return True
    return (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir()


def discover_repositories(paths: Iterable[Path], depth: int = 2) -> list[Path]:
    """Each path that is a repository, else the repositories under it (``depth`` levels), sorted and
    without duplicates. A path that does not exist raises SourceError."""
    found: dict[str, Path] = {}

    def walk(p: Path, level: int) -> None:
        if is_repository(p):
            found.setdefault(str(p.resolve()), p.resolve())
            return
        if level >= depth:
            return
        try:
            children = sorted(c for c in p.iterdir() if c.is_dir() and not c.name.startswith("."))
        except OSError:
            return
        for child in children:
            walk(child, level + 1)

    for raw in paths:
        p = Path(raw).expanduser()
        if not p.exists():
            raise SourceError(f"git: {p} (in git_repos) does not exist; fix the path in cclens.toml "
                              "or CCLENS_GIT_REPOS")
        walk(p, 0)
    return [found[k] for k in sorted(found)]


def normalise_remote(url: str | None) -> tuple[str | None, str | None]:
    """``(host, owner/name)`` of a remote URL, or ``(None, None)`` for local paths.

    ``git@github.com:Acme/API.git``, ``https://tok@github.com/Acme/API`` and
    ``ssh://git@github.com:22/Acme/API.git`` all give ``("github.com", "Acme/API")``. HTTP(S) ports are
    kept (a server on a non-standard port is a different host); SSH ports are not.
    """
    if not url:
        return None, None
    url = url.strip()
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme == "file" or not parts.hostname:
            return None, None
        host = parts.hostname.lower()
        if parts.port and parts.scheme in ("http", "https"):
            host = f"{host}:{parts.port}"
        path = parts.path
    else:
        m = _SCP_REMOTE_RE.match(url)
        if not m or url.startswith(("/", ".")):
            return None, None
        host, path = m.group(1).lower(), m.group(2)
    path = path.strip("/")
    if path.endswith(".git"):
        path = path[:-4]
    if not path or "/" not in path:
        return None, None
    return host, path


def repo_id_for(host: str | None, full_name: str | None, local_path: Path | str | None = None) -> str:
    """The warehouse id of a repository: ``host/owner/name`` in lower case, else ``local:<path>``."""
    if host and full_name:
        return f"{host}/{full_name}".lower()
    return f"local:{local_path}"


def scrub_url(url: str | None) -> str | None:
    """A remote URL without user name or password (tokens are often embedded there)."""
    if not url or "://" not in url:
        return url
    parts = urlsplit(url)
    if not parts.username and not parts.password:
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()


# -- running git --------------------------------------------------------------------------------------
def _git_binary() -> str:
    exe = shutil.which("git")
    if not exe:
        raise SourceError("git: the git program is not installed or not on PATH; install git to sync repositories")
    return exe


def _env() -> dict[str, str]:
    # Stable, machine-readable output whatever the user's config says.
    env = dict(os.environ, LC_ALL="C", GIT_TERMINAL_PROMPT="0", GIT_PAGER="cat")
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    return env


def git(repo: Path, *args: str, input: bytes | None = None, check: bool = True) -> bytes:
    """Run ``git -C repo args`` and return stdout; SourceError (naming the repository) on failure."""
    proc = subprocess.run([_git_binary(), "-C", str(repo), "-c", "core.quotepath=off", *args], input=input,
                          capture_output=True, env=_env())
    if check and proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SourceError(f"git: `git {' '.join(args[:2])}` failed in {repo}: {err[-1] if err else proc.returncode}; "
                          "check that it is a readable git repository")
    return proc.stdout


def current_tips(repo: Path) -> dict[str, str]:
    """``{ref name: commit sha}`` for branches, remote-tracking branches, tags (peeled) and a detached HEAD."""
    out = git(repo, "for-each-ref", "--format=%(objectname) %(objecttype) %(*objectname) %(*objecttype) %(refname)",
              *REF_PATTERNS)
    tips: dict[str, str] = {}
    for line in out.decode("utf-8", "replace").splitlines():
        parts = line.split(" ", 4)
        if len(parts) != 5:
            continue
        sha, kind, peeled, peeled_kind, ref = parts
        if kind == "commit":
            tips[ref] = sha
        elif kind == "tag" and peeled_kind == "commit":
            tips[ref] = peeled
    head = git(repo, "rev-parse", "--verify", "-q", "HEAD^{commit}", check=False).decode().strip()
    symbolic = git(repo, "symbolic-ref", "-q", "HEAD", check=False).decode().strip()
    if head and not symbolic:
        tips["HEAD"] = head  # detached: HEAD may be the only ref reaching its commits
    return tips


def existing_objects(repo: Path, shas: Iterable[str]) -> set[str]:
    """Which of ``shas`` are commits this repository still has."""
    shas = list(dict.fromkeys(shas))
    if not shas:
        return set()
    out = git(repo, "cat-file", "--batch-check=%(objectname) %(objecttype)", input=("\n".join(shas) + "\n").encode())
    return {line.split(" ")[0] for line in out.decode().splitlines() if line.endswith(" commit")}


def rev_list(repo: Path, include: Iterable[str], exclude: Iterable[str] = ()) -> list[str]:
    """``git rev-list`` of ``include`` minus everything reachable from ``exclude`` (revs on stdin)."""
    lines = [*include, *(f"^{x}" for x in exclude)]
    if not any(not x.startswith("^") for x in lines):
        return []
    out = git(repo, "rev-list", "--stdin", input=("\n".join(lines) + "\n").encode())
    return out.decode().split()


# -- parsing ------------------------------------------------------------------------------------------
def parse_trailers(message: str) -> list[tuple[str, str]]:
    """The ``Key: value`` trailers of a commit message's last paragraph (continuation lines folded).

    A paragraph counts as trailers when every line is a trailer or a continuation of one, and it is
    not the subject.
    """
    paragraphs = [p for p in re.split(r"\n\s*\n", message.strip()) if p.strip()]
    if len(paragraphs) < 2:
        return []
    out: list[tuple[str, str]] = []
    for line in paragraphs[-1].splitlines():
        if line[:1] in (" ", "\t") and out:
            out[-1] = (out[-1][0], f"{out[-1][1]} {line.strip()}")
            continue
        m = _TRAILER_RE.match(line)
        if not m or "://" in m.group(1):
            return []
        out.append((m.group(1), m.group(2)))
    return out


def _split_date(raw: str) -> tuple[int | None, int | None]:
    """``"1700000000 +0130"`` (git's raw date) → (epoch seconds, offset minutes)."""
    try:
        secs, tz = raw.split(" ", 1)
        sign = -1 if tz.startswith("-") else 1
        tz = tz.lstrip("+-")
        return int(secs), sign * (int(tz[:2]) * 60 + int(tz[2:4]))
    except (ValueError, IndexError):
        return None, None


@dataclass
class ParsedBatch:
    """Column lists for ``commit`` and ``commit_file`` rows (see the schema)."""

    commits: dict[str, list[Any]] = field(default_factory=lambda: {k: [] for k in COMMIT_COLUMNS})
    files: dict[str, list[Any]] = field(default_factory=lambda: {k: [] for k in FILE_COLUMNS})
    malformed: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.commits["sha"])


COMMIT_COLUMNS = ("sha", "parents", "is_merge", "author_name", "author_email", "author_ts", "author_tz_min",
                  "committer_name", "committer_email", "committer_ts", "committer_tz_min", "subject", "message",
                  "trailers", "co_authors", "claude_coauthor", "claude_marker", "files_changed", "lines_added",
                  "lines_deleted", "binary_files", "source_ref")
FILE_COLUMNS = ("sha", "path", "old_path", "lines_added", "lines_deleted", "is_binary")


def parse_record(record: str, batch: ParsedBatch) -> None:
    """Add one ``git log`` record (without its leading RS) to ``batch``."""
    # A message never holds NUL, so the first US+NUL ends the header whatever the paths contain.
    header, sep, numstat = record.partition("\x1f\0")
    if not sep:  # no NUL at all: the last record of a stream, without a diff
        header, numstat = record.removesuffix("\x1f"), ""
    fields = header.split("\x1f", len(_FIELDS) - 1)
    if len(fields) != len(_FIELDS) or not _SHA_RE.match(fields[0]):
        batch.malformed.append(record[:4096])  # e.g. a message holding an RS byte: quarantined, not fatal
        return
    sha, parents, source, an, ae, ad, cn, ce, cd, message = fields
    parent_list = parents.split() if parents else []
    a_ts, a_tz = _split_date(ad)
    c_ts, c_tz = _split_date(cd)
    message = message.rstrip("\n")
    trailers = parse_trailers(message)
    co_authors = [v for k, v in trailers if k.lower() == "co-authored-by"]
    c = batch.commits
    c["sha"].append(sha)
    c["parents"].append(parent_list)
    c["is_merge"].append(len(parent_list) > 1)
    c["author_name"].append(an)
    c["author_email"].append(ae.lower())
    c["author_ts"].append(a_ts)
    c["author_tz_min"].append(a_tz)
    c["committer_name"].append(cn)
    c["committer_email"].append(ce.lower())
    c["committer_ts"].append(c_ts)
    c["committer_tz_min"].append(c_tz)
    c["subject"].append(message.split("\n", 1)[0])
    c["message"].append(message)
    c["trailers"].append(orjson.dumps(trailers).decode() if trailers else None)
    c["co_authors"].append(co_authors)
    c["claude_coauthor"].append(any(_CLAUDE_COAUTHOR_RE.search(v) for v in co_authors))
    c["claude_marker"].append(bool(_CLAUDE_MARKER_RE.search(message)))
    c["source_ref"].append(source or None)
    files = added = deleted = binary = 0
    tokens = numstat.lstrip("\n").split("\0")
    f = batch.files
    i, n = 0, len(tokens)
    while i < n:
        tok = tokens[i]
        i += 1
        if not tok:
            continue
        parts = tok.split("\t", 2)
        if len(parts) != 3:
            continue
        a, d, path = parts
        old = None
        if path == "":  # a rename or copy: old and new path follow as tokens of their own
            old = tokens[i] if i < n else ""
            path = tokens[i + 1] if i + 1 < n else ""
            i += 2
        is_bin = a == "-"
        la = None if is_bin else int(a)
        ld = None if is_bin else int(d)
        f["sha"].append(sha)
        f["path"].append(path)
        f["old_path"].append(old)
        f["lines_added"].append(la)
        f["lines_deleted"].append(ld)
        f["is_binary"].append(is_bin)
        files += 1
        if is_bin:
            binary += 1
        else:
            added += la
            deleted += ld
    merge = len(parent_list) > 1
    c["files_changed"].append(None if merge and not files else files)
    c["lines_added"].append(None if merge and not files else added)
    c["lines_deleted"].append(None if merge and not files else deleted)
    c["binary_files"].append(None if merge and not files else binary)


def log_batches(repo: Path, revs: list[str], batch_size: int = BATCH_COMMITS) -> Iterator[ParsedBatch]:
    """Parse ``git log --numstat`` of ``revs`` (stdin syntax: ``ref`` or ``^sha``) in batches.

    One process; its output is read in blocks so memory stays bounded by ``batch_size`` commits.
    """
    if not any(not r.startswith("^") for r in revs):
        return
    cmd = [_git_binary(), "-C", str(repo), "-c", "core.quotepath=off", "-c", "diff.renames=true",
           "log", "--stdin", "--source", "-z", "--numstat", "-M", "--date=raw", "--no-color",
           "--no-show-signature", "--no-ext-diff", "--no-textconv", f"--format={LOG_FORMAT}"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=_env())
    assert proc.stdin and proc.stdout and proc.stderr
    try:
        proc.stdin.write(("\n".join(revs) + "\n").encode())
        proc.stdin.close()
        batch = ParsedBatch()
        tail = b""
        while True:
            block = proc.stdout.read(_READ_BLOCK)
            if not block:
                break
            # Split bytes before decoding, so a block boundary never cuts a UTF-8 sequence.
            records = (tail + block).split(b"\x1e")
            tail = records.pop()
            for rec in records:
                if rec:
                    parse_record(rec.decode("utf-8", "replace"), batch)
            if len(batch) + len(batch.malformed) >= batch_size:
                yield batch
                batch = ParsedBatch()
        if tail:
            parse_record(tail.decode("utf-8", "replace"), batch)
        err = proc.stderr.read()
        if proc.wait() != 0:
            lines = err.decode("utf-8", "replace").strip().splitlines()
            raise SourceError(f"git: `git log` failed in {repo}: {lines[-1] if lines else proc.returncode}; "
                              "check that it is a readable git repository")
        if len(batch) or batch.malformed:
            yield batch
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            stream.close()


# -- loading ------------------------------------------------------------------------------------------
_TS = pa.timestamp("s", tz="UTC")
_COMMIT_TYPES = {"parents": pa.list_(pa.string()), "co_authors": pa.list_(pa.string()), "is_merge": pa.bool_(),
                 "claude_coauthor": pa.bool_(), "claude_marker": pa.bool_(), "author_ts": _TS, "committer_ts": _TS,
                 "author_tz_min": pa.int16(), "committer_tz_min": pa.int16(), "files_changed": pa.int32(),
                 "lines_added": pa.int64(), "lines_deleted": pa.int64(), "binary_files": pa.int32()}
_FILE_TYPES = {"lines_added": pa.int32(), "lines_deleted": pa.int32(), "is_binary": pa.bool_()}


def _arrow(columns: dict[str, list[Any]], types: dict[str, pa.DataType]) -> pa.Table:
    arrays = {}
    for name, values in columns.items():
        kind = types.get(name, pa.string())
        if kind == _TS:
            arrays[name] = pa.array(values, pa.int64()).cast(_TS)
        else:
            arrays[name] = pa.array(values, kind)
    return pa.table(arrays)


@dataclass
class RepoSyncResult:
    """What one repository's sync did."""

    repo_id: str
    path: str
    status: str = "ok"            # ok | error
    new_commits: int = 0
    files: int = 0
    unreachable: int = 0          # commits newly marked unreachable
    revived: int = 0              # commits reachable again
    malformed: int = 0
    full_rescan: bool = False
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def repository_identity(repo: Path) -> dict[str, Any]:
    """``repo_id``, host, full name, remote and default branch of a clone."""
    remote = git(repo, "config", "--get", "remote.origin.url", check=False).decode().strip() or None
    if remote is None:
        names = git(repo, "remote", check=False).decode().split()
        if names:
            remote = git(repo, "config", "--get", f"remote.{names[0]}.url", check=False).decode().strip() or None
    host, full_name = normalise_remote(remote)
    head = git(repo, "symbolic-ref", "-q", "--short", "refs/remotes/origin/HEAD", check=False).decode().strip()
    default = head.split("/", 1)[1] if "/" in head else None
    if default is None:
        default = git(repo, "symbolic-ref", "-q", "--short", "HEAD", check=False).decode().strip() or None
    return {"repo_id": repo_id_for(host, full_name, repo), "host": host, "full_name": full_name,
            "name": (full_name or repo.name).rsplit("/", 1)[-1], "local_path": str(repo),
            "remote_url": scrub_url(remote), "default_branch": default}


def load_cursor(wh: Any, repo_id: str) -> dict[str, Any]:
    rows = wh.query("SELECT cursor FROM source_state WHERE source = ?", [f"git:{repo_id}"])
    if not rows or not rows[0]["cursor"]:
        return {}
    value = rows[0]["cursor"]
    return orjson.loads(value) if isinstance(value, (str, bytes)) else dict(value)


def _save_state(wh: Any, repo_id: str, cursor: dict[str, Any] | None, now: datetime, rows: int,
                error: str | None) -> None:
    source = f"git:{repo_id}"
    old = wh.query("SELECT cursor, last_success FROM source_state WHERE source = ?", [source])
    wh.execute("DELETE FROM source_state WHERE source = ?", [source])
    keep_cursor = orjson.dumps(cursor).decode() if cursor is not None else (old[0]["cursor"] if old else None)
    wh.execute("INSERT INTO source_state (source, cursor, last_success, last_attempt, last_rows, last_error) "
               "VALUES (?, ?, ?, ?, ?, ?)",
               [source, keep_cursor, now if error is None else (old[0]["last_success"] if old else None), now,
                rows, error])


def _upsert_repository(wh: Any, ident: dict[str, Any], now: datetime) -> None:
    existing = wh.query("SELECT * FROM repository WHERE repo_id = ?", [ident["repo_id"]])
    if existing:
        wh.execute("UPDATE repository SET local_path = ?, remote_url = ?, host = coalesce(host, ?), "
                   "full_name = coalesce(full_name, ?), name = coalesce(name, ?), "
                   "default_branch = coalesce(default_branch, ?), git_synced_at = ? WHERE repo_id = ?",
                   [ident["local_path"], ident["remote_url"], ident["host"], ident["full_name"], ident["name"],
                    ident["default_branch"], now, ident["repo_id"]])
    else:
        wh.execute("INSERT INTO repository (repo_id, host, full_name, name, local_path, remote_url, default_branch, "
                   "git_synced_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   [ident["repo_id"], ident["host"], ident["full_name"], ident["name"], ident["local_path"],
                    ident["remote_url"], ident["default_branch"], now])


def _load_batch(wh: Any, repo_id: str, batch: ParsedBatch, now: datetime, known: bool) -> tuple[int, int, int]:
    """Insert one parsed batch; returns (commits inserted, files inserted, commits revived).

    A SHA names immutable content, so a commit already stored is not rewritten: it is only marked
    reachable again (``revived``) if a rewrite had hidden it.
    """
    commits = _arrow(batch.commits, _COMMIT_TYPES)
    files = _arrow(batch.files, _FILE_TYPES)
    wh.register("_git_commits", commits)
    wh.register("_git_files", files)
    try:
        revived = 0
        new = "TRUE"
        if known:
            revived = wh.scalar("SELECT count(*) FROM commit WHERE repo_id = ? AND NOT reachable "
                                "AND sha IN (SELECT sha FROM _git_commits)", [repo_id])
            if revived:
                wh.execute("UPDATE commit SET reachable = true, unreachable_at = NULL, updated_at = ? "
                           "WHERE repo_id = ? AND NOT reachable AND sha IN (SELECT sha FROM _git_commits)",
                           [now, repo_id])
            new = "sha NOT IN (SELECT sha FROM commit WHERE repo_id = $repo)"
        cols = ", ".join(COMMIT_COLUMNS)
        fcols = ", ".join(FILE_COLUMNS)
        if known:
            # counts and files first: the commit insert below changes what "not yet stored" means
            inserted = wh.scalar(f"SELECT count(*) FROM _git_commits WHERE {new}", {"repo": repo_id})
            files_inserted = wh.scalar(f"SELECT count(*) FROM _git_files WHERE {new}", {"repo": repo_id})
            wh.execute(f"INSERT INTO commit_file (repo_id, {fcols}) SELECT $repo, {fcols} FROM _git_files "
                       f"WHERE {new}", {"repo": repo_id})
            wh.execute(f"INSERT INTO commit (repo_id, {cols}, reachable, first_seen_at, updated_at) "
                       f"SELECT $repo, {cols}, true, $now, $now FROM _git_commits WHERE {new}",
                       {"repo": repo_id, "now": now})
        else:
            wh.execute(f"INSERT INTO commit_file (repo_id, {fcols}) SELECT ?, {fcols} FROM _git_files", [repo_id])
            wh.execute(f"INSERT INTO commit (repo_id, {cols}, reachable, first_seen_at, updated_at) "
                       f"SELECT ?, {cols}, true, ?, ? FROM _git_commits", [repo_id, now, now])
            inserted, files_inserted = commits.num_rows, files.num_rows
    finally:
        wh.unregister("_git_commits")
        wh.unregister("_git_files")
    for raw in batch.malformed:
        wh.execute("INSERT INTO quarantine (source, origin, reason, raw, received_at) VALUES (?, ?, ?, ?, ?)",
                   ["git", repo_id, "unparseable git log record", raw, now])
    return inserted, files_inserted, revived


def _mark_reachability(wh: Any, repo: Path, repo_id: str, old_tips: list[str], tips: dict[str, str],
                       now: datetime, result: RepoSyncResult) -> None:
    """Mark commits no current ref reaches as unreachable (see module doc)."""
    if not old_tips:
        return
    present = existing_objects(repo, old_tips)
    if len(present) == len(set(old_tips)):
        gone = rev_list(repo, present, tips.values())
        if gone:
            wh.register("_git_gone", pa.table({"sha": pa.array(gone, pa.string())}))
            try:
                result.unreachable = wh.scalar(
                    "SELECT count(*) FROM commit WHERE repo_id = ? AND reachable AND sha IN (SELECT sha FROM _git_gone)",
                    [repo_id])
                wh.execute("UPDATE commit SET reachable = false, unreachable_at = ?, updated_at = ? "
                           "WHERE repo_id = ? AND reachable AND sha IN (SELECT sha FROM _git_gone)", [now, now, repo_id])
            finally:
                wh.unregister("_git_gone")
        return
    # An old tip was garbage-collected: what it reached cannot be listed, so recompute in full.
    result.full_rescan = True
    live = rev_list(repo, tips.values())
    wh.register("_git_live", pa.table({"sha": pa.array(live, pa.string())}))
    try:
        result.unreachable = wh.scalar(
            "SELECT count(*) FROM commit WHERE repo_id = ? AND reachable AND sha NOT IN (SELECT sha FROM _git_live)",
            [repo_id])
        wh.execute("UPDATE commit SET reachable = false, unreachable_at = ?, updated_at = ? "
                   "WHERE repo_id = ? AND reachable AND sha NOT IN (SELECT sha FROM _git_live)", [now, now, repo_id])
    finally:
        wh.unregister("_git_live")


def sync_repository(wh: Any, path: Path, *, now: datetime | None = None,
                    batch_size: int = BATCH_COMMITS) -> RepoSyncResult:
    """Sync one clone into ``wh`` (see the module doc). Git runs before the transaction opens; the
    rows, reachability and cursor commit together. Raises SourceError for an unreadable repository."""
    now = now or datetime.now(UTC)
    repo = Path(path).expanduser().resolve()
    if not repo.exists() or not is_repository(repo):
        raise SourceError(f"git: {repo} is not a git repository; fix git_repos in cclens.toml")
    ident = repository_identity(repo)
    repo_id = ident["repo_id"]
    result = RepoSyncResult(repo_id, str(repo))
    cursor = load_cursor(wh, repo_id)
    old_tips = list(dict.fromkeys((cursor.get("tips") or {}).values()))
    tips = current_tips(repo)
    existing_old = existing_objects(repo, old_tips) if old_tips else set()
    # Positive side by ref name, so `--source` reports branch names.
    revs = [ref for ref in tips] + [f"^{sha}" for sha in existing_old]
    known = bool(wh.scalar("SELECT count(*) > 0 FROM commit WHERE repo_id = ?", [repo_id]))
    with wh.transaction():
        _upsert_repository(wh, ident, now)
        if tips and tips != cursor.get("tips"):
            for batch in log_batches(repo, revs, batch_size):
                inserted, files, revived = _load_batch(wh, repo_id, batch, now, known)
                result.new_commits += inserted
                result.files += files
                result.revived += revived
                result.malformed += len(batch.malformed)
            _mark_reachability(wh, repo, repo_id, old_tips, tips, now, result)
        elif not tips and old_tips:
            _mark_reachability(wh, repo, repo_id, old_tips, tips, now, result)
        _refresh_git_identities(wh, repo_id)
        _save_state(wh, repo_id, {"tips": tips, "path": str(repo)}, now, result.new_commits, None)
    return result


def _unchanged(wh: Any, repo: Path, now: datetime) -> tuple[RepoSyncResult, Any] | None:
    """When the clone's refs are exactly those of the cursor (the common case of a scheduled run):
    the result and the write that records the run (repository row, state), else None. Git runs and
    the cursor is read here, before any transaction, so ``cclens serve``'s writer is not held."""
    ident = repository_identity(repo)
    cursor = load_cursor(wh, ident["repo_id"])
    tips = current_tips(repo)
    if not tips or tips != cursor.get("tips") or cursor.get("path") != str(repo):
        return None

    def write(w: Any) -> None:
        _upsert_repository(w, ident, now)
        _save_state(w, ident["repo_id"], {"tips": tips, "path": str(repo)}, now, 0, None)
    return RepoSyncResult(ident["repo_id"], str(repo)), write


def _refresh_git_identities(wh: Any, repo_id: str) -> None:
    """Rebuild the ``git`` identities (author and committer emails) from every repository's commits."""
    wh.execute("DELETE FROM eng_identity WHERE system = 'git'")
    wh.execute("""
        INSERT INTO eng_identity (system, identity, display_name, email, first_seen, last_seen)
        SELECT 'git', email, arg_max(name, ts), email, min(ts), max(ts) FROM (
            SELECT author_email AS email, author_name AS name, author_ts AS ts FROM commit
            UNION ALL SELECT committer_email, committer_name, committer_ts FROM commit)
        WHERE email IS NOT NULL AND email <> '' GROUP BY email
    """)


def sync_git(settings: Any, wh: Any, *, paths: Iterable[Path] | None = None,
             now: datetime | None = None, submit: Any = None) -> list[RepoSyncResult]:
    """Sync every repository under ``paths`` (default ``settings.git_repos``); one result each.

    A repository that fails is reported (and its error recorded in ``source_state``) without
    stopping the others. No configured paths raises SourceError naming the setting. ``submit(fn)``
    runs ``fn(wh)`` in one transaction (``cclens serve`` passes its single writer); by default each
    repository is written on ``wh`` directly.
    """
    now = now or datetime.now(UTC)
    roots = list(paths if paths is not None else getattr(settings, "git_repos", None) or [])
    if not roots:
        raise SourceError("git: no repositories configured; set git_repos in cclens.toml "
                          "(or CCLENS_GIT_REPOS) to clones or folders of clones")
    results = []
    for repo in discover_repositories(roots):
        try:
            run = _unchanged(wh, repo, now)
            if run is not None:  # nothing to read: a light write, outside any long transaction
                result, write = run
                if submit is None:
                    with wh.transaction():
                        write(wh)
                else:
                    submit(write)
                results.append(result)
            elif submit is None:
                results.append(sync_repository(wh, repo, now=now))
            else:
                results.append(submit(lambda w, r=repo: sync_repository(w, r, now=now)))
        except SourceError as exc:
            ident_id = f"local:{repo}"
            try:
                ident_id = repository_identity(repo)["repo_id"]
            except SourceError:
                pass
            results.append(RepoSyncResult(ident_id, str(repo), status="error", error=str(exc)))
            if submit is None:
                with wh.transaction():
                    _save_state(wh, ident_id, None, now, 0, str(exc))
            else:
                submit(lambda w, i=ident_id, e=str(exc): _save_state(w, i, None, now, 0, e))
    return results

