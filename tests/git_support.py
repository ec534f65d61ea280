"""Build real git repositories in tests with the real ``git`` binary (deterministic dates and people)."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

UTC = timezone.utc


class Repo:
    """A git working tree at ``path``; each commit advances a fake clock by one minute from ``start``."""

    def __init__(self, path: Path, *, branch: str = "main", start: datetime = datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
                 bare_remote: Path | None = None):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.clock = start
        self.git("init", "-q", "-b", branch)
        self.git("config", "user.name", "Ada Lovelace")
        self.git("config", "user.email", "Ada@Example.com")
        self.git("config", "commit.gpgsign", "false")

    def git(self, *args: str, env: dict[str, str] | None = None, input: bytes | None = None) -> str:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        full_env.update(env or {})
        proc = subprocess.run(["git", "-C", str(self.path), *args], capture_output=True, env=full_env, input=input)
        if proc.returncode:
            raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr.decode()}")
        return proc.stdout.decode().strip()

    def write(self, name: str, content: str | bytes) -> Path:
        p = self.path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
        return p

    def commit(self, message: str, files: dict[str, str | bytes] | None = None, *, when: datetime | None = None,
               tz: str = "+0000", author: tuple[str, str] | None = None, allow_empty: bool = False) -> str:
        for name, content in (files or {}).items():
            self.write(name, content)
        self.git("add", "-A")
        if when is None:
            self.clock += timedelta(minutes=1)
            when = self.clock
        stamp = f"{int(when.timestamp())} {tz}"
        env = {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
        if author:
            env.update(GIT_AUTHOR_NAME=author[0], GIT_AUTHOR_EMAIL=author[1])
        args = ["commit", "-q", "-F", "-"] + (["--allow-empty"] if allow_empty else [])
        self.git(*args, env=env, input=message.encode())
        return self.head()

    def head(self, rev: str = "HEAD") -> str:
        return self.git("rev-parse", rev)

    def checkout(self, branch: str, *, new: bool = False) -> None:
        self.git("checkout", "-q", *(["-b"] if new else []), branch)

    def merge(self, branch: str, message: str | None = None) -> str:
        self.clock += timedelta(minutes=1)
        stamp = f"{int(self.clock.timestamp())} +0000"
        self.git("merge", "-q", "--no-ff", "-m", message or f"Merge {branch}", branch,
                 env={"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp})
        return self.head()
