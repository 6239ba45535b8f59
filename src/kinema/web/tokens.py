"""Web API tokens: KINEMA_HOME/web/tokens.json (mode 0600) holds only their SHA-256.

A token is `kt_` + 43 random URL-safe characters (256 bits), so a plain SHA-256 is
enough to store it: nothing short enough to guess hides behind the hash. A token's id
(8 hex digits) owns the jobs made with it and is what `list` and `revoke` name; the
secret itself is shown once, when it is made.

A token carries roles: `creator` (makes takes, sees and publishes its own) and
`reviewer` (sees every item, approves, rejects, withdraws), or both. The file holds a
format version: version 1 (no roles) is migrated on first read, its tokens getting both
roles, as they could do both before.
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

__all__ = ["ROLES", "Token", "TokenStore", "parse_roles"]

PREFIX = "kt_"
ROLES = ("creator", "reviewer")
FORMAT_VERSION = 2


def parse_roles(text: str) -> tuple[str, ...]:
    """The roles a --role value names: creator, reviewer or both; else InputError."""
    value = (text or "").strip().lower()
    if value == "both":
        return ROLES
    if value in ROLES:
        return (value,)
    raise InputError(f"--role must be creator, reviewer or both, got '{value[:20]}'")


@dataclass(frozen=True)
class Token:
    """A token's public record (never its secret)."""

    id: str
    name: str
    created: str
    revoked: str | None = None
    roles: tuple[str, ...] = ROLES

    @property
    def identity(self) -> str:
        """Who this token acts as in the review gate: `token:<id>`."""
        return f"token:{self.id}"

    def can(self, role: str) -> bool:
        """Whether the token carries ROLE (creator or reviewer)."""
        return role in self.roles


class TokenStore:
    """The tokens under HOME/web/tokens.json; safe to share between threads."""

    def __init__(self, home: str | os.PathLike):
        self.folder = Path(os.fspath(home)) / "web"
        self.path = self.folder / "tokens.json"
        self._lock = threading.Lock()
        self._cache: tuple[float, list[dict]] | None = None

    def create(self, name: str = "token", roles: tuple[str, ...] = ROLES) -> tuple[Token, str]:
        """Make a token with ROLES (default both); returns its record and the secret
        (shown once, stored hashed)."""
        name = name.strip()[:60] or "token"
        roles = tuple(r for r in ROLES if r in roles)
        if not roles:
            raise InputError("a token needs a role: creator, reviewer or both")
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
                "roles": list(roles),
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
            data = json.loads(self.path.read_text())
            if data.get("version", 1) < FORMAT_VERSION:
                # version 1 had no roles: its tokens could do everything, so they get both
                entries = [{**e, "roles": list(e.get("roles") or ROLES)} for e in data["tokens"]]
                self._write(entries)
                return [dict(e) for e in entries]
            self._cache = (mtime, data["tokens"])
        return [dict(e) for e in self._cache[1]]

    def _write(self, entries: list[dict]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        tmp = self.folder / f".tokens.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump({"version": FORMAT_VERSION, "tokens": entries}, handle, indent=2)
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        self._cache = None


def _token(entry: dict) -> Token:
    values = {k: v for k, v in entry.items() if k in Token.__dataclass_fields__}
    values["roles"] = tuple(r for r in ROLES if r in (entry.get("roles") or ROLES))
    return Token(**values)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def as_dict(token: Token) -> dict:
    """JSON-ready form of a token's record."""
    return asdict(token)
