"""The demo's memory: users in an embedded SQLite database, their photos in a per-user content-addressed store.

::

    store = UserStore()                                  # $PIAA_DEMO_DB or <cache_dir>/demo/users.sqlite3
    user = store.open_user("Ada", profile.to_dict())     # created, or found and its profile updated
    photo = store.add_photo(user, "/tmp/upload/cat.jpg")  # copied into the store (sha256-keyed), limits checked
    store.set_ratings(user, {photo.sha256: 4.5})          # validated on PARA_SCALE, one transaction
    store.save_model(user, fitted)                        # the taskvec user (alpha + config), a few kilobytes
    store.delete_user(user)                               # rows and stored photos

Tables: ``users`` (name -> profile), ``photos`` (user, sha256, display name, size), ``ratings``, ``rankings`` (the
last zero-shot and blended scores per photo) and ``models`` (the fitted user's ``alpha.safetensors`` bytes and
``user.json``). The database runs in WAL mode with ``synchronous=FULL``; every write is one ``BEGIN IMMEDIATE``
transaction, so a write that returned is on disk even if the process is killed right after.

Photos live under ``<photos root>/<user token>/<sha256><suffix>``; the token is random per user, and a photo's
path is only ever resolved through the rows of the asking user (:meth:`UserStore.photo`), so one user's session
cannot reach another's photos. Library module, no entry point.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from piaa.schema import PARA_SCALE, Scale, validate_ratings

MAX_PHOTO_BYTES = 25 * 2**20  # one uploaded file
MAX_PHOTOS = 200  # photos per user
MAX_NAME = 40  # characters in a user name
DB_ENV = "PIAA_DEMO_DB"

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, name TEXT NOT NULL, token TEXT NOT NULL UNIQUE,
    profile TEXT NOT NULL DEFAULT '{}', created REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS photos (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE, sha256 TEXT NOT NULL, name TEXT NOT NULL,
    suffix TEXT NOT NULL, size INTEGER NOT NULL, added REAL NOT NULL,
    PRIMARY KEY (user_id, sha256), UNIQUE (user_id, name));
CREATE TABLE IF NOT EXISTS ratings (
    user_id INTEGER NOT NULL, sha256 TEXT NOT NULL, score REAL NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (user_id, sha256),
    FOREIGN KEY (user_id, sha256) REFERENCES photos(user_id, sha256) ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS rankings (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE, kind TEXT NOT NULL, scores TEXT NOT NULL,
    info TEXT NOT NULL DEFAULT '', updated REAL NOT NULL, PRIMARY KEY (user_id, kind));
CREATE TABLE IF NOT EXISTS models (
    user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE, alpha BLOB NOT NULL, config TEXT NOT NULL,
    updated REAL NOT NULL);
"""


class StoreError(ValueError):
    """A refusal the page shows as it is (a bad name, a file too large, too many photos, an unknown photo)."""


@dataclass(frozen=True)
class User:
    id: int
    name: str
    token: str
    profile: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Photo:
    sha256: str
    name: str  # display name (the uploaded file's name, made unique within the user)
    size: int
    path: Path


def default_db() -> Path:
    """``$PIAA_DEMO_DB``, else ``<piaa cache dir>/demo/users.sqlite3``."""
    from piaa.models import cache_dir

    return Path(os.environ.get(DB_ENV) or cache_dir() / "demo" / "users.sqlite3").expanduser()


def clean_name(name: object) -> str:
    """A user name as stored: whitespace collapsed; refused when empty, too long or with control characters."""
    if not isinstance(name, str) or not " ".join(name.split()):
        raise StoreError("Enter your name first: it is how the demo remembers you.")
    name = " ".join(name.split())
    if len(name) > MAX_NAME:
        raise StoreError(f"Names are at most {MAX_NAME} characters (got {len(name)}).")
    if any(not ch.isprintable() for ch in name):
        raise StoreError("A name cannot contain control characters.")
    return name


def _suffix(filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ""


def _display_name(filename: str) -> str:
    name = " ".join(Path(str(filename)).name.split()) or "photo"
    return "".join(ch for ch in name if ch.isprintable())[:120] or "photo"


class UserStore:
    """Users, photos, ratings, rankings and fitted models of the demo (see the module docstring)."""

    def __init__(self, db: str | os.PathLike | None = None, photos: str | os.PathLike | None = None,
                 max_photo_bytes: int = MAX_PHOTO_BYTES, max_photos: int = MAX_PHOTOS):  # fmt: skip
        self.db = Path(db).expanduser() if db else default_db()
        self.root = Path(photos).expanduser() if photos else self.db.with_name(self.db.stem + "-photos")
        self.max_photo_bytes, self.max_photos = int(max_photo_bytes), int(max_photos)
        self.db.parent.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        con = self._con()
        if con.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
            raise StoreError(f"{self.db}: SQLite could not switch to WAL mode")
        with self._tx() as c:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    c.execute(statement)

    # ------------------------------------------------------------------ connections
    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.db, timeout=30, isolation_level=None, check_same_thread=False)
            con.execute("PRAGMA foreign_keys=ON")
            con.execute("PRAGMA synchronous=FULL")
            con.execute("PRAGMA busy_timeout=30000")
            self._local.con = con
        return con

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any error)."""
        con = self._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    # ------------------------------------------------------------------ users
    def get_user(self, name: str) -> User | None:
        """The user called ``name`` (case-insensitive), or None."""
        row = self._con().execute("SELECT id, name, token, profile FROM users WHERE key = ?",
                                  (clean_name(name).casefold(),)).fetchone()  # fmt: skip
        return User(row[0], row[1], row[2], json.loads(row[3])) if row else None

    def open_user(self, name: str, profile: Mapping | None = None) -> User:
        """The user called ``name``, created if new; ``profile`` (when given) replaces the stored one."""
        name, now = clean_name(name), time.time()
        with self._tx() as con:
            row = con.execute(
                "SELECT id, name, token, profile FROM users WHERE key = ?", (name.casefold(),)
            ).fetchone()
            if row is None:
                token = secrets.token_hex(16)
                cur = con.execute("INSERT INTO users (key, name, token, profile, created, updated) VALUES "
                                  "(?, ?, ?, ?, ?, ?)", (name.casefold(), name, token, json.dumps(dict(profile or {})),
                                                         now, now))  # fmt: skip
                return User(int(cur.lastrowid), name, token, dict(profile or {}))
            if profile is not None:
                con.execute("UPDATE users SET profile = ?, updated = ? WHERE id = ?",
                            (json.dumps(dict(profile)), now, row[0]))  # fmt: skip
                return User(row[0], row[1], row[2], dict(profile))
            return User(row[0], row[1], row[2], json.loads(row[3]))

    def delete_user(self, user: User) -> int:
        """Delete the user's rows and stored photos; returns how many photos were removed."""
        with self._tx() as con:
            n = con.execute("SELECT COUNT(*) FROM photos WHERE user_id = ?", (user.id,)).fetchone()[0]
            con.execute("DELETE FROM users WHERE id = ?", (user.id,))
        shutil.rmtree(self._user_dir(user), ignore_errors=True)
        return int(n)

    # ------------------------------------------------------------------ photos
    def _user_dir(self, user: User) -> Path:
        if not re.fullmatch(r"[0-9a-f]{32}", user.token):
            raise StoreError("invalid user token")
        return self.root / user.token

    def _path(self, user: User, sha256: str, suffix: str) -> Path:
        return self._user_dir(user) / f"{sha256}{suffix}"

    def add_photo(self, user: User, src: str | os.PathLike, name: str | None = None) -> Photo:
        """Copy ``src`` into the user's store (the same content twice is one photo). Refused, naming the file: a file
        over the size limit, an empty or unreadable file, or one photo too many."""
        src = Path(src)
        shown = _display_name(name or src.name)
        try:
            size = src.stat().st_size
        except OSError as err:
            raise StoreError(f"{shown}: could not be read ({err.strerror or err})") from None
        if size > self.max_photo_bytes:
            limit = self.max_photo_bytes / 2**20
            raise StoreError(f"{shown}: {size / 2**20:.1f} MB is over the limit of {limit:g} MB a photo")
        if size == 0:
            raise StoreError(f"{shown}: the file is empty")
        folder = self._user_dir(user)
        folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out, src.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
                    out.write(chunk)
            sha = digest.hexdigest()
            photo = self._insert_photo(user, sha, shown, _suffix(shown) or _suffix(src.name), size)
            if not photo.path.exists():
                os.replace(tmp, photo.path)
            return photo
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _insert_photo(self, user: User, sha: str, shown: str, suffix: str, size: int) -> Photo:
        with self._tx() as con:
            row = con.execute("SELECT name, suffix, size FROM photos WHERE user_id = ? AND sha256 = ?",
                              (user.id, sha)).fetchone()  # fmt: skip
            if row:
                return Photo(sha, row[0], row[2], self._path(user, sha, row[1]))
            n = con.execute("SELECT COUNT(*) FROM photos WHERE user_id = ?", (user.id,)).fetchone()[0]
            if n >= self.max_photos:
                raise StoreError(f"{shown}: you already have {n} photos, the most the demo keeps per user "
                                 f"({self.max_photos}); delete your data to start over")  # fmt: skip
            taken = {r[0] for r in con.execute("SELECT name FROM photos WHERE user_id = ?", (user.id,))}
            unique, k = shown, 2
            while unique in taken:
                unique, k = f"{Path(shown).stem} ({k}){Path(shown).suffix}", k + 1
            con.execute("INSERT INTO photos (user_id, sha256, name, suffix, size, added) VALUES (?, ?, ?, ?, ?, ?)",
                        (user.id, sha, unique, suffix, size, time.time()))  # fmt: skip
        return Photo(sha, unique, size, self._path(user, sha, suffix))

    def photos(self, user: User) -> list[Photo]:
        """The user's photos, in the order they were added."""
        rows = self._con().execute("SELECT sha256, name, size, suffix FROM photos WHERE user_id = ? "
                                   "ORDER BY added, rowid", (user.id,)).fetchall()  # fmt: skip
        return [Photo(r[0], r[1], r[2], self._path(user, r[0], r[3])) for r in rows]

    def photo(self, user: User, sha256: str) -> Photo:
        """One of the user's photos by content hash; another user's (or an unknown) hash is refused."""
        row = self._con().execute("SELECT sha256, name, size, suffix FROM photos WHERE user_id = ? AND sha256 = ?",
                                  (user.id, str(sha256))).fetchone()  # fmt: skip
        if row is None:
            raise StoreError(f"{sha256!s:.16}: not one of your photos")
        return Photo(row[0], row[1], row[2], self._path(user, row[0], row[3]))

    def remove_photo(self, user: User, sha256: str) -> None:
        """Forget one photo (its ratings too) and delete its file."""
        photo = self.photo(user, sha256)
        with self._tx() as con:
            con.execute("DELETE FROM photos WHERE user_id = ? AND sha256 = ?", (user.id, photo.sha256))
        photo.path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ ratings, rankings, models
    def set_ratings(self, user: User, ratings: Mapping[str, object], scale: Scale = PARA_SCALE) -> dict[str, float]:
        """Replace the user's ratings with ``ratings`` ({sha256: score}), validated on ``scale``; one transaction."""
        names = {p.sha256: p.name for p in self.photos(user)}
        unknown = [s for s in ratings if s not in names]
        if unknown:
            raise StoreError(f"{unknown[0]!s:.16}: not one of your photos")
        clean: dict[str, float] = {}
        if ratings:
            shas = list(ratings)
            _, y = validate_ratings([names[s] for s in shas], [ratings[s] for s in shas], scale, source="your ratings")
            clean = dict(zip(shas, (float(v) for v in y)))
        now = time.time()
        with self._tx() as con:
            con.execute("DELETE FROM ratings WHERE user_id = ?", (user.id,))
            con.executemany("INSERT INTO ratings (user_id, sha256, score, updated) VALUES (?, ?, ?, ?)",
                            [(user.id, s, v, now) for s, v in clean.items()])  # fmt: skip
        return clean

    def ratings(self, user: User) -> dict[str, float]:
        rows = self._con().execute("SELECT sha256, score FROM ratings WHERE user_id = ?", (user.id,)).fetchall()
        return {r[0]: float(r[1]) for r in rows}

    def save_ranking(self, user: User, kind: str, scores: Mapping[str, float], info: str = "") -> None:
        """The last ranking of ``kind`` (``"zero_shot"`` or ``"blended"``): {sha256: score} and its note."""
        with self._tx() as con:
            data = json.dumps({k: float(v) for k, v in scores.items()})
            con.execute("INSERT OR REPLACE INTO rankings (user_id, kind, scores, info, updated) "
                        "VALUES (?, ?, ?, ?, ?)", (user.id, kind, data, info, time.time()))  # fmt: skip

    def drop_ranking(self, user: User, kind: str) -> None:
        with self._tx() as con:
            con.execute("DELETE FROM rankings WHERE user_id = ? AND kind = ?", (user.id, kind))

    def ranking(self, user: User, kind: str) -> tuple[dict[str, float], str] | None:
        row = self._con().execute("SELECT scores, info FROM rankings WHERE user_id = ? AND kind = ?",
                                  (user.id, kind)).fetchone()  # fmt: skip
        return (json.loads(row[0]), row[1]) if row else None

    def save_model(self, user: User, fitted) -> None:
        """The fitted taskvec user (:class:`taskvec.model.PersonalizedUser`): its two small files, as a row."""
        with tempfile.TemporaryDirectory() as tmp:
            folder = fitted.save_pretrained(Path(tmp) / "user")
            alpha, config = (folder / "alpha.safetensors").read_bytes(), (folder / "user.json").read_text()
        with self._tx() as con:
            con.execute("INSERT OR REPLACE INTO models (user_id, alpha, config, updated) VALUES (?, ?, ?, ?)",
                        (user.id, sqlite3.Binary(alpha), config, time.time()))  # fmt: skip

    def load_model(self, user: User):
        """The user's fitted taskvec user, or None (checked as :meth:`PersonalizedUser.from_pretrained` does)."""
        row = self._con().execute("SELECT alpha, config FROM models WHERE user_id = ?", (user.id,)).fetchone()
        if row is None:
            return None
        from taskvec.model import PersonalizedUser

        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "alpha.safetensors").write_bytes(bytes(row[0]))
            (Path(tmp) / "user.json").write_text(row[1])
            return PersonalizedUser.from_pretrained(tmp)

    def drop_model(self, user: User) -> None:
        with self._tx() as con:
            con.execute("DELETE FROM models WHERE user_id = ?", (user.id,))
