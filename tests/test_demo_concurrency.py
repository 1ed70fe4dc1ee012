"""The demo under concurrent users, over HTTP with ``gradio_client`` on loopback, and a server killed mid-write.

* 8 users x 5 actions at once (rank with their own uploads, save ratings twice, personalize, continue as): no
  errors, every rating stored, each user's gallery and database rows hold only their own photos.
* A server in a subprocess takes ratings from 4 users as fast as they come and is killed with SIGKILL while they
  keep writing: the reopened database holds every rating whose write was acknowledged.
"""

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from demo.app import HEADERS
from demo.store import UserStore
from tests.test_demo import free_port

ROOT = Path(__file__).resolve().parents[1]


def make_photos(folder: Path, n: int, seed: int) -> list[Path]:
    """Small distinct JPEGs (a colour gradient per photo)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        base = rng.integers(0, 255, size=3)
        ramp = np.linspace(0, 1, 96)[None, :, None] * rng.integers(30, 200, size=3)
        img = np.clip(base + ramp + np.zeros((96, 1, 1)), 0, 255).astype(np.uint8)
        out.append(folder / f"u{seed}-p{i}.jpg")
        Image.fromarray(img).save(out[-1], quality=90)
    return out


def client(port: int):
    from gradio_client import Client

    return Client(f"http://127.0.0.1:{port}/", verbose=False)


def test_eight_users_five_actions_each(tmp_path):
    from gradio_client import handle_file

    from demo.app import serve
    from demo.service import DemoService

    store = UserStore(tmp_path / "users.sqlite3")
    port = free_port()
    app = serve(DemoService(), store, "127.0.0.1", port, warm=False, block=False)

    def user_session(u: int) -> dict:
        name, photos = f"user{u}", make_photos(tmp_path / f"in{u}", 3, seed=u)
        c = client(port)
        out = c.predict(name, f"I like photo number {u}", "", "", "", [handle_file(str(p)) for p in photos],
                        api_name="/rank")  # fmt: skip
        rows = out[6]["data"]
        assert len(rows) == 3, out[7]
        rows[0][1], rows[1][1] = 1 + u % 5, 5 - u % 4
        assert "Saved 2 rating" in c.predict({"headers": HEADERS, "data": rows}, api_name="/save_ratings")
        rows[2][1] = 3.5
        assert "Saved 3 rating" in c.predict({"headers": HEADERS, "data": rows}, api_name="/save_ratings")
        out = c.predict({"headers": HEADERS, "data": rows}, api_name="/personalize")
        assert "Personalized with 3 rating" in out[7] or "equal" in out[7], out[7]
        back = c.predict(name, api_name="/continue_as")
        # the same ratings come back; the table follows the personalized ranking, where rated photos keep their rating
        assert f"Welcome back, {name}" in back[7] and sorted(back[6]["data"]) == sorted(rows)
        order = [r[0] for r in back[6]["data"]]
        rating = {r[0]: float(r[1]) for r in rows}
        assert [rating[n] for n in order] == sorted(rating.values(), reverse=True)  # shown in the user's order
        return {"name": name, "rows": rows, "gallery": [g["caption"] for g in back[5]]}

    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(user_session, range(8)))
    finally:
        app.close()
    tokens = set()
    for res in results:
        user = store.get_user(res["name"])
        names = {p.sha256: p.name for p in store.photos(user)}
        assert sorted(names.values()) == sorted(r[0] for r in res["rows"])  # only their own uploads
        assert {names[s]: v for s, v in store.ratings(user).items()} == {r[0]: float(r[1]) for r in res["rows"]}
        assert sorted(c.split(" · ")[0].split(" ", 1)[1] for c in res["gallery"]) == sorted(names.values())
        tokens.add(user.token)
        assert all(p.path.parent == store.root / user.token for p in store.photos(user))
    assert len(tokens) == 8


def start_server(db: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "demo.app", "--db", str(db), "--port", str(port), "--no-warm"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 180
    import urllib.request

    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise AssertionError("server did not start in 180 s")


def test_killing_the_server_mid_write_loses_no_saved_rating(tmp_path):
    db, n_users, n_photos = tmp_path / "users.sqlite3", 4, 40
    store = UserStore(db)
    for u in range(n_users):  # users with photos, as a ranking leaves them (no models needed to save ratings)
        user = store.open_user(f"user{u}", {"text": "anything"})
        shas = [store.add_photo(user, p).sha256 for p in make_photos(tmp_path / f"in{u}", n_photos, seed=u)]
        store.save_ranking(user, "zero_shot", {s: 3.0 for s in shas})
    store.close()
    port = free_port()
    proc = start_server(db, port)
    acked: dict[str, int] = {}  # user -> how many photos rated in the last acknowledged write
    shown: dict[str, list[str]] = {}  # user -> photo names in table order
    stop = threading.Event()

    def writer(u: int) -> None:
        name = f"user{u}"
        c = client(port)
        rows = c.predict(name, api_name="/continue_as")[6]["data"]
        shown[name] = [r[0] for r in rows]
        for k in range(1, n_photos + 1):  # each write rates one more photo (photo i always gets the same rating)
            if stop.is_set():
                return
            data = [[r[0], (1 + (i % 9) / 2) if i < k else None] for i, r in enumerate(rows)]
            try:
                note = c.predict({"headers": HEADERS, "data": data}, api_name="/save_ratings")
            except Exception:  # noqa: BLE001 - the server was killed mid-request: this write was not acknowledged
                return
            assert note == f"Saved {k} rating(s).", note
            acked[name] = k

    threads = [threading.Thread(target=writer, args=(u,), daemon=True) for u in range(n_users)]
    for t in threads:
        t.start()
    deadline = time.time() + 120
    while sum(acked.values()) < 3 * n_users and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # mid-write: the writers are still sending
    stop.set()
    proc.wait(timeout=30)
    for t in threads:
        t.join(timeout=30)
    assert sum(acked.values()) >= 3 * n_users, acked
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = UserStore(db)
    for name, k in acked.items():
        user = store.get_user(name)
        ratings = store.ratings(user)
        got = {shown[name].index(p.name): ratings[p.sha256] for p in store.photos(user) if p.sha256 in ratings}
        assert len(got) >= k, (name, k, len(got))  # every acknowledged rating is there (an unacknowledged one may be)
        assert all(got[i] == 1 + (i % 9) / 2 for i in range(k)), (name, got)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """Loopback only: never route the test's HTTP through a proxy."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


class FakeScorer:
    """The zero-shot model for the warm-up tests: each photo's score first calls ``wait(path)``; it reads no free
    text; ``prepared`` records, per :meth:`prepare` call, whether a ranking had scored before it."""

    def __init__(self, service, wait=lambda path: None):
        self.service, self.wait, self.prepared = service, wait, []

    def prepare(self):
        self.prepared.append(self.service._scored)
        return self

    def encode_profile(self, profile):
        return type("Code", (), {"what_i_read": staticmethod(lambda: [])})()

    def score(self, paths, profile=None, scale=None, on_error="skip", stats=None):
        from piaa.scoring import ScoreResult

        for p in paths:
            self.wait(p)
        return ScoreResult(np.full(len(paths), 3.0), scale, [str(p) for p in paths])


def test_the_warm_up_lets_a_waiting_ranking_go_before_loading_personalization(monkeypatch):
    """A user who ranks while the zero-shot model is still loading waits for it; the warm-up then loads the
    few-shot models only after that user's ranking is done, not alongside it."""
    from demo.service import DemoService

    warm_scored, user_scored, loaded = threading.Event(), threading.Event(), threading.Event()
    events = {"sample.jpg": warm_scored, "user.jpg": user_scored}
    service = DemoService()
    scorer = FakeScorer(service, wait=lambda p: events[p.name].wait(5))  # each photo waits for its event
    monkeypatch.setattr(service, "sample_photos", lambda: [Path("sample.jpg")])
    monkeypatch.setattr(service, "pmllm", lambda: scorer)
    monkeypatch.setattr(service, "_features", lambda paths: loaded.set())
    warm = threading.Thread(target=service.warm)
    warm.start()  # "loading" the zero-shot model
    time.sleep(0.2)
    user = threading.Thread(target=service.rank, args=(service.make_profile(""), ["user.jpg"]))
    user.start()  # a user ranks meanwhile: waits for the model
    deadline = time.monotonic() + 5
    while service._ranking < 2 and time.monotonic() < deadline:  # the warm-up's ranking and the user's
        time.sleep(0.01)
    warm_scored.set()  # the model is warm; the user's ranking runs now
    time.sleep(0.5)
    assert not loaded.is_set()  # the warm-up waits for it
    user_scored.set()
    user.join(5)
    warm.join(5)
    assert loaded.is_set() and service._ranking == 0
    assert scorer.prepared == [False]  # the first call's one-off work: once, right after the load


def test_the_warm_up_leaves_the_first_calls_work_to_a_ranking_that_scored_first(monkeypatch):
    from demo.service import DemoService

    service = DemoService()
    scorer = FakeScorer(service)
    monkeypatch.setattr(service, "sample_photos", lambda: [Path("sample.jpg")])
    monkeypatch.setattr(service, "pmllm", lambda: scorer)
    monkeypatch.setattr(service, "_features", lambda paths: None)
    service.rank(service.make_profile(""), ["user.jpg"])  # a user's ranking scored before the warm-up got there
    service.warm()
    assert scorer.prepared == []
