"""Web API tokens: KINEMA_HOME/web/tokens.json (mode 0600) holds only their SHA-256.

A token is `kt_` + 43 random URL-safe characters (256 bits), so a plain SHA-256 is
enough to store it: nothing short enough to guess hides behind the hash. A token's id
(8 hex digits) owns the jobs made with it and is what `list` and `revoke` name; the
secret itself is shown once, when it is made.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from kinema.errors import InputError

__all__ = ["Token", "TokenStore"]

PREFIX = "kt_"


@dataclass(frozen=True)
class Token:
    """A token's public record (never its secret)."""

    id: str
    name: str
    created: str
    revoked: str | None = None


class TokenStore:
    """The tokens under HOME/web/tokens.json; safe to share between threads."""

    def __init__(self, home: str | os.PathLike):
        self.folder = Path(os.fspath(home)) / "web"
        self.path = self.folder / "tokens.json"
        self._lock = threading.Lock()
        self._cache: tuple[float, list[dict]] | None = None

    def create(self, name: str = "token") -> tuple[Token, str]:
        """Make a token; returns its record and the secret (shown once, stored hashed)."""
        name = name.strip()[:60] or "token"
        secret = PREFIX + secrets.token_urlsafe(32)
        with self._lock:
            entries = self._read()
            ids = {e["id"] for e in entries}
            token_id = secrets.token_hex(4)
            while token_id in ids:
                token_id = secrets.token_hex(4)
            entry = {
                "id": token_id,
                "name": name,
                "created": _now(),
                "revoked": None,
                "sha256": _hash(secret),
            }
            self._write([*entries, entry])
        return _token(entry), secret

    def ensure_first(self) -> str | None:
        """Create the first token when there is none; returns its secret, else None."""
        with self._lock:
            empty = not self._read()
        return self.create("first")[1] if empty else None

    def list(self) -> list[Token]:
        """All tokens, revoked ones included, oldest first."""
        with self._lock:
            return [_token(e) for e in self._read()]

    def revoke(self, token_id: str) -> Token:
        """Revoke a token by id; its requests get 401 from now on."""
        with self._lock:
            entries = self._read()
            for entry in entries:
                if entry["id"] == token_id:
                    entry["revoked"] = entry["revoked"] or _now()
                    self._write(entries)
                    return _token(entry)
        raise InputError(f"no token with id '{token_id}'")

    def check(self, secret: str | None) -> Token | None:
        """The live token this secret belongs to, or None."""
        if not secret or not secret.startswith(PREFIX) or len(secret) > 100:
            return None
        digest = _hash(secret)
        with self._lock:
            entries = self._read()
        for entry in entries:
            if hmac.compare_digest(entry["sha256"], digest) and not entry["revoked"]:
                return _token(entry)
        return None

    def _read(self) -> list[dict]:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return []
        if self._cache is None or self._cache[0] != mtime:
            self._cache = (mtime, json.loads(self.path.read_text())["tokens"])
        return [dict(e) for e in self._cache[1]]

    def _write(self, entries: list[dict]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        tmp = self.folder / f".tokens.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump({"tokens": entries}, handle, indent=2)
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        self._cache = None


def _token(entry: dict) -> Token:
    return Token(**{k: v for k, v in entry.items() if k in Token.__dataclass_fields__})


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def as_dict(token: Token) -> dict:
    """JSON-ready form of a token's record."""
    return asdict(token)
