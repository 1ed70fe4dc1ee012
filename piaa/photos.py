"""The photo pool the product owns: real photographs to build worlds from and to show as demo samples.

* :func:`bundled_photos` - the real photographs that ship offline with scikit-image, scikit-learn and matplotlib,
  each with a content label (people, animal, food, vehicle, space, flower, architecture, abstract).
* :func:`folder_photos` - any folder of photos (``--photos DIR``); the content label is the first sub-folder name
  (``DIR/animal/cat.jpg`` -> ``animal``) or ``photo`` for files directly in ``DIR``.
* :func:`pool_photos` - the **photo pool**: the real pictures listed in ``piaa/data/photo_pool.csv`` (the
  manifest), taken from three Debian packages (``plasma-workspace-wallpapers``, ``opencv-doc``,
  ``libjxl-testdata``) and the bundled photos' own packages. :func:`fetch_pool` (``python -m piaa.photos fetch``,
  ``make photos``) downloads the packages with ``apt-get download`` (no root needed), extracts them with
  ``dpkg-deb -x``, checks each original file's sha256 against the manifest and stores it as a JPEG (long side at
  most 1024 px) in ``$PIAA_CACHE_DIR/photo-pool``; ``pool.json`` (written last) records what was stored.
* :func:`available_photos` - the pool when it is present and verifies, else the bundled photos;
  :func:`sample_photos` - the demo's sample gallery (pool pictures spread over content classes, else bundled).
* ``python -m piaa.photos sheet --out docs/photo_pool.png`` - a contact sheet of the pool.

How the manifest was curated: every candidate picture in the packages was looked at (contact sheets viewed by
eye); logos, text/documents, charts, calibration patterns, synthetic shapes, renders of test objects, tiny
(< 256 px) test crops and solid colours were left out. Near-duplicates (stereo/registration pairs, the
grayscale/alpha/re-encoded variants of one picture, the dark variants of a wallpaper design) were found with an
8x8 average hash of the luma (:func:`average_hash`: 1 bit per cell above the mean) and a 64-bit DCT hash
(:func:`dct_hash`: signs of the 8x8 lowest DCT frequencies of a 32x32 luma thumbnail against their median): a pair
within :data:`NEAR_DUPLICATE_BITS` (12) of 64 bits in *both* hashes is a near-duplicate and only one picture of it
is kept (:func:`near_duplicates`; ``python -m piaa.photos dups DIR`` runs it on a folder). That flags the
grayscale/alpha copies (0 bits), the basketball and rubber-whale frame pairs (<= 2) and a dark wallpaper variant
(8/6); the closest pair left in the pool differs in 18 bits. Shifted views of one scene (stereo and registration
pairs such as aloeL/aloeR, leuvenA/B, graf1/3, aero1/3), crops and recoloured variants are not caught by a
global hash; those were dropped by eye (listed in eval/sim/SIM.md).

Library module, no side effects on import.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from piaa.files import unique_tmp
from piaa.images import ImageDecodeError, load_image

PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MIN_SHORT_SIDE = 320  # photos are decoded at least this large (the simulated world renders at this short side)

MANIFEST = Path(__file__).parent / "data" / "photo_pool.csv"
MANIFEST_COLUMNS = ("name", "package", "path", "sha256", "kind", "content", "licence", "notes")
KINDS = ("photo", "artwork")
# the pool's content vocabulary (a picture has one label, checked by eye)
CONTENT_CLASSES = ("abstract", "animal", "architecture", "artwork", "food", "landscape", "objects", "people",
                   "plant", "space", "vehicle", "water")  # fmt: skip
DEBIAN_PACKAGES = ("plasma-workspace-wallpapers", "opencv-doc", "libjxl-testdata")
POOL_INDEX = "pool.json"
POOL_MAX_SIDE = 1024  # stored pool pictures: long side at most this many pixels
NEAR_DUPLICATE_BITS = 12  # of 64: pictures within this many bits in both hashes are near-duplicates

# (name, content label, how to find it); only the real colour/grayscale photographs, no drawings or textures.
_SKIMAGE = (
    ("astronaut", "people", "astronaut.png"),
    ("camera", "people", "camera.png"),
    ("chelsea", "animal", "chelsea.png"),
    ("coffee", "food", "coffee.png"),
    ("rocket", "vehicle", "rocket.jpg"),
    ("motorcycle", "vehicle", "motorcycle_left.png"),
    ("hubble_deep_field", "space", "hubble_deep_field.jpg"),
    ("moon", "space", "moon.png"),
    ("immunohistochemistry", "abstract", "ihc.png"),
    ("retina", "abstract", "retina.jpg"),
)
_SKLEARN = (("china", "architecture", "china.jpg"), ("flower", "flower", "flower.jpg"))
_MATPLOTLIB = (("grace_hopper", "people", "grace_hopper.jpg"),)


class PoolError(RuntimeError):
    """The photo pool is missing, incomplete, or a file does not match its manifest checksum."""


@dataclass
class Photo:
    name: str
    content: str
    image: Image.Image  # RGB


@dataclass(frozen=True)
class PoolEntry:
    """One manifest row: a picture inside a package (Debian, or the Python package of a bundled photo)."""

    name: str
    package: str
    path: str  # inside the package (Debian: the path dpkg-deb -x creates; Python: relative to site-packages)
    sha256: str  # of the original file inside the package
    kind: str  # photo | artwork
    content: str
    licence: str
    notes: str = ""


def _shrink(img: Image.Image, max_short: int = 720) -> Image.Image:
    """Keep sources modest so every crop still has >= MIN_SHORT_SIDE px but rendering stays fast."""
    s = min(img.size)
    if s <= max_short:
        return img
    f = max_short / s
    return img.resize((round(img.width * f), round(img.height * f)), Image.LANCZOS)


def bundled_photos() -> list[Photo]:
    """The real photographs bundled with the installed scikit-image / scikit-learn / matplotlib (offline)."""
    out: list[Photo] = []
    try:
        import skimage.data

        for name, content, fname in _SKIMAGE:
            path = Path(skimage.data.data_dir) / fname
            if path.is_file():
                out.append(Photo(name, content, _shrink(load_image(path))))
    except ImportError:
        pass
    try:
        import sklearn.datasets

        folder = Path(sklearn.datasets.__file__).parent / "images"
        for name, content, fname in _SKLEARN:
            if (folder / fname).is_file():
                out.append(Photo(name, content, _shrink(load_image(folder / fname))))
    except ImportError:
        pass
    try:
        import matplotlib

        folder = Path(matplotlib.get_data_path()) / "sample_data"
        for name, content, fname in _MATPLOTLIB:
            if (folder / fname).is_file():
                out.append(Photo(name, content, _shrink(load_image(folder / fname))))
    except ImportError:
        pass
    if not out:
        raise RuntimeError("no bundled sample photos found (scikit-image/scikit-learn/matplotlib); use --photos DIR")
    return out


def photo_files(folder: str | Path) -> list[Path]:
    """Every file with a photo extension under ``folder`` (recursive, sorted by path text); hidden files and
    folders, such as ``.thumbnails/``, left out: the one rule for which files in a folder are photos."""
    folder = Path(folder)
    return sorted((f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in PHOTO_EXTENSIONS
                   and not any(part.startswith(".") for part in f.relative_to(folder).parts)), key=str)  # fmt: skip


def folder_label(relative: Path) -> str | None:
    """The content label of a picture at ``relative`` path inside a folder: its first sub-folder's name (lower case,
    spaces as ``_``); None for a picture directly in the folder."""
    return relative.parts[0].lower().replace(" ", "_") if len(relative.parts) > 1 else None


def folder_photos(folder: str | Path) -> list[Photo]:
    """Every decodable photo under ``folder`` (sorted, recursive); content label = :func:`folder_label` ("photo"
    for one directly in ``folder``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--photos {folder}: not a folder")
    out: list[Photo] = []
    for path in photo_files(folder):
        rel = path.relative_to(folder)
        content = folder_label(rel) or "photo"
        try:
            img = load_image(path, min_side=MIN_SHORT_SIDE)
        except ImageDecodeError as err:
            print(f"skipping {err}")
            continue
        if min(img.size) < 64:
            print(f"skipping {path}: too small ({img.size[0]}x{img.size[1]})")
            continue
        name = str(rel.with_suffix("")).replace(os.sep, "_").replace(" ", "_")
        out.append(Photo(name, content, _shrink(img)))
    if not out:
        raise FileNotFoundError(f"--photos {folder}: no decodable photos ({', '.join(PHOTO_EXTENSIONS)})")
    return out


# ------------------------------------------------------------------------------------------------ manifest
def read_manifest(path: str | Path | None = None) -> list[PoolEntry]:
    """The manifest's rows (default :data:`MANIFEST`, ``piaa/data/photo_pool.csv``)."""
    path = path or MANIFEST
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != MANIFEST_COLUMNS:
            raise PoolError(f"{path}: columns {reader.fieldnames} != {list(MANIFEST_COLUMNS)}")
        return [PoolEntry(**row) for row in reader]


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pool_dir() -> Path:
    """The default pool folder: ``$PIAA_CACHE_DIR/photo-pool``."""
    from piaa.models import cache_dir

    return cache_dir() / "photo-pool"


def python_package_root(package: str) -> Path | None:
    """The site-packages folder holding an installed Python package's files (manifest paths are relative to it)."""
    module = {"scikit-image": "skimage", "scikit-learn": "sklearn", "matplotlib": "matplotlib"}.get(package)
    if module is None:
        return None
    try:
        mod = __import__(module)
    except ImportError:
        return None
    return Path(mod.__file__).resolve().parent.parent


def _stored_name(entry: PoolEntry) -> str:
    return f"{entry.name}.jpg"


def _pool_index(folder: Path) -> dict:
    index = folder / POOL_INDEX
    if not index.is_file():
        return {}
    try:
        return json.loads(index.read_text()).get("pictures", {})
    except (json.JSONDecodeError, AttributeError):
        return {}


def missing_entries(entries: list[PoolEntry], folder: Path) -> list[PoolEntry]:
    """Entries whose stored picture is absent, or recorded for another original, or altered since."""
    index = _pool_index(folder)
    out = []
    for e in entries:
        rec = index.get(e.name)
        ok = (rec is not None and rec.get("source_sha256") == e.sha256 and (folder / rec["file"]).is_file()
              and sha256_file(folder / rec["file"]) == rec.get("sha256"))  # fmt: skip
        if not ok:
            out.append(e)
    return out


def install_from_roots(
    entries: list[PoolEntry], roots: dict[str, Path], dest: str | Path, *, log: Callable[[str], None] = print
) -> Path:
    """Verify each entry's original file under ``roots[package]`` and store it in ``dest`` (``pool.json`` last).

    Raises :class:`PoolError` naming the first file that is missing or whose sha256 differs from the manifest;
    nothing is recorded for a pool that did not verify.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    index = _pool_index(dest)  # pictures stored earlier stay recorded (fetch_pool drops those off the manifest)
    for i, e in enumerate(entries):
        if e.package not in roots:
            raise PoolError(f"{e.name}: package {e.package} was not fetched")
        src = Path(roots[e.package]) / e.path
        if not src.is_file():
            raise PoolError(f"{e.name}: {e.package}:{e.path} not found in the extracted package")
        digest = sha256_file(src)
        if digest != e.sha256:
            raise PoolError(f"{e.name}: checksum mismatch for {e.package}:{e.path} (sha256 {digest[:12]}..., "
                            f"manifest {e.sha256[:12]}...); refusing it")  # fmt: skip
        img = load_image(src)
        img.thumbnail((POOL_MAX_SIDE, POOL_MAX_SIDE), Image.LANCZOS)
        out = dest / _stored_name(e)
        tmp = out.with_suffix(".tmp")
        img.save(tmp, format="JPEG", quality=92)
        tmp.replace(out)
        index[e.name] = {"file": out.name, "source_sha256": e.sha256, "sha256": sha256_file(out),
                         "content": e.content, "kind": e.kind, "package": e.package, "path": e.path}  # fmt: skip
        log(f"[{i + 1}/{len(entries)}] {e.name} ({e.content}) <- {e.package}:{e.path}")
    _write_index(dest, index)
    return dest


def _write_index(dest: Path, pictures: dict) -> None:
    data = {"manifest": "piaa/data/photo_pool.csv", "pictures": dict(sorted(pictures.items()))}
    tmp = dest / (POOL_INDEX + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(dest / POOL_INDEX)


def _apt_missing_message() -> str:
    return (
        "the photo pool is fetched with apt-get/dpkg-deb, which this machine lacks; build worlds from your own "
        "pictures instead: python -m eval.sim --out DIR --photos DIR (content label = sub-folder name)"
    )


def fetch_pool(
    dest: str | Path | None = None,
    *,
    manifest: str | Path | None = None,
    debs: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Fetch, verify and store the manifest's pictures in ``dest`` (default :func:`pool_dir`); idempotent.

    ``debs``: a folder that already holds the ``.deb`` files (skips ``apt-get download``). Raises
    :class:`PoolError` with a one-line message when ``apt-get``/``dpkg-deb`` are missing or a checksum fails.
    """
    dest = Path(dest) if dest else pool_dir()
    entries = read_manifest(manifest)
    todo = missing_entries(entries, dest)
    if not todo:
        log(f"photo pool up to date: {len(entries)} pictures in {dest} (nothing to do)")
        return dest
    log(f"photo pool: {len(todo)} of {len(entries)} pictures to fetch into {dest}")
    needed = sorted({e.package for e in todo if e.package in DEBIAN_PACKAGES})
    roots: dict[str, Path] = {}
    for e in todo:
        if e.package not in DEBIAN_PACKAGES:
            root = python_package_root(e.package)
            if root is None:
                raise PoolError(f"{e.name}: Python package {e.package} is not installed")
            roots[e.package] = root
    with tempfile.TemporaryDirectory(prefix="piaa-photo-pool-") as work:
        work = Path(work)
        for pkg in needed:
            roots[pkg] = _extract_package(pkg, work, Path(debs) if debs else None, log)
        install_from_roots(todo, roots, dest, log=log)
    index = _pool_index(dest)
    _write_index(dest, {k: v for k, v in index.items() if k in {e.name for e in entries}})
    log(f"photo pool ready: {len(entries)} pictures in {dest}")
    return dest


def _extract_package(pkg: str, work: Path, debs: Path | None, log: Callable[[str], None]) -> Path:
    """Download (unless ``debs`` has it) and extract one Debian package; returns the extraction root."""
    if shutil.which("dpkg-deb") is None or (debs is None and shutil.which("apt-get") is None):
        raise PoolError(_apt_missing_message())
    found = sorted(debs.glob(f"{pkg}_*.deb")) if debs else []
    if not found:
        log(f"downloading {pkg} (apt-get download) ...")
        run = subprocess.run(["apt-get", "download", pkg], cwd=work, capture_output=True, text=True)
        found = sorted(work.glob(f"{pkg}_*.deb"))
        if run.returncode != 0 or not found:
            last = (run.stderr or run.stdout).strip().splitlines()[-1:] or ["no output"]
            raise PoolError(f"apt-get download {pkg} failed ({last[0]}); try 'apt-get update' first, or pass "
                            f"--photos DIR to python -m eval.sim instead")  # fmt: skip
    root = work / f"x-{pkg}"
    log(f"extracting {found[-1].name} ...")
    run = subprocess.run(["dpkg-deb", "-x", str(found[-1]), str(root)], capture_output=True, text=True)
    if run.returncode != 0:
        raise PoolError(f"dpkg-deb -x {found[-1].name} failed: {run.stderr.strip()[:200]}")
    return root


# ------------------------------------------------------------------------------------------------ reading the pool
def pool_photos(folder: str | Path | None = None, *, manifest: str | Path | None = None) -> list[Photo]:
    """The pool's pictures (manifest order, content label from the manifest); raises :class:`PoolError` unless
    every manifest picture is stored in ``folder`` (default :func:`pool_dir`) and matches its recorded checksum."""
    folder = Path(folder) if folder else pool_dir()
    entries = read_manifest(manifest)
    if not (folder / POOL_INDEX).is_file():
        raise PoolError(f"no photo pool in {folder}: run 'make photos' (python -m piaa.photos fetch)")
    bad = missing_entries(entries, folder)
    if bad:
        raise PoolError(f"photo pool in {folder} is incomplete or altered ({len(bad)} pictures, e.g. "
                        f"{bad[0].name}): run 'make photos' again")  # fmt: skip
    index = _pool_index(folder)
    return [Photo(e.name, e.content, _shrink(load_image(folder / index[e.name]["file"]))) for e in entries]


def pool_available(folder: str | Path | None = None) -> bool:
    """Whether a complete, verified pool is stored in ``folder`` (default :func:`pool_dir`)."""
    folder = Path(folder) if folder else pool_dir()
    try:
        return (folder / POOL_INDEX).is_file() and not missing_entries(read_manifest(), folder)
    except (OSError, PoolError):
        return False


def pool_sources() -> dict[str, dict]:
    """name -> {content, kind, package, path, sha256 (original)} of the manifest's pictures (for world.json)."""
    return {e.name: {"content": e.content, "kind": e.kind, "package": e.package, "path": e.path,
                     "sha256": e.sha256} for e in read_manifest()}  # fmt: skip


def available_photos() -> list[Photo]:
    """The photo pool when it is present and verifies, else the bundled photos."""
    return pool_photos() if pool_available() else bundled_photos()


def spread_over_classes(photos: list[Photo], n: int) -> list[Photo]:
    """Up to ``n`` photos taken round-robin over the sorted content classes (each class in its given order)."""
    by: dict[str, list[Photo]] = {}
    for p in photos:
        by.setdefault(p.content, []).append(p)
    out: list[Photo] = []
    rank = 0
    while len(out) < n and any(rank < len(v) for v in by.values()):
        out += [by[c][rank] for c in sorted(by) if rank < len(by[c])][: n - len(out)]
        rank += 1
    return out


def sample_photos(folder: str | Path | None = None, n: int = 16) -> list[Path]:
    """Up to ``n`` real photos for a user who uploads none, as JPEG files in ``folder`` (default
    ``$PIAA_CACHE_DIR/demo-samples``): pool pictures spread over its content classes when the pool is present
    (:func:`pool_available`), else the bundled photographs; resized to at most 640 px on the long side.

    Written once and reused; the file names say what each photo is (``03-chelsea.jpg``).
    """
    from piaa.models import cache_dir

    folder = Path(folder) if folder else cache_dir() / "demo-samples"
    photos = spread_over_classes(pool_photos(), n) if pool_available() else bundled_photos()[:n]
    paths = [folder / f"{i:02d}-{p.name}.jpg" for i, p in enumerate(photos)]
    if all(p.is_file() for p in paths):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    for photo, path in zip(photos, paths):
        img = photo.image.copy()
        img.thumbnail((640, 640), Image.LANCZOS)
        tmp = unique_tmp(path)  # the demo and a CLI run may write the samples at once
        img.save(tmp, format="JPEG", quality=90)
        tmp.replace(path)
    return paths


# ------------------------------------------------------------------------------------------------ near-duplicates
def _luma(img: Image.Image, size: int) -> np.ndarray:
    return np.asarray(img.convert("L").resize((size, size), Image.BILINEAR), dtype=float)


def average_hash(img: Image.Image) -> int:
    """64-bit average hash: 8x8 luma thumbnail, 1 bit per cell brighter than the thumbnail's mean."""
    a = _luma(img, 8)
    return int("".join("1" if v else "0" for v in (a > a.mean()).ravel()), 2)


def dct_hash(img: Image.Image) -> int:
    """64-bit DCT hash: the 8x8 lowest frequencies of a 32x32 luma thumbnail's DCT-II, 1 bit each above median."""
    a = _luma(img, 32)
    k = np.arange(32)
    basis = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / 64)  # (freq, pixel)
    low = (basis @ a @ basis.T)[:8, :8].ravel()
    return int("".join("1" if v else "0" for v in low > np.median(low[1:])), 2)


def hamming(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


def near_duplicates(images: dict[str, Image.Image], max_bits: int = NEAR_DUPLICATE_BITS) -> list[tuple[str, str, int]]:
    """Pairs (a, b, distance) whose average *and* DCT hashes both differ in at most ``max_bits`` of 64 bits
    (distance = the larger of the two)."""
    hashes = {k: (average_hash(v), dct_hash(v)) for k, v in images.items()}
    names = sorted(hashes)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            d = max(hamming(hashes[a][0], hashes[b][0]), hamming(hashes[a][1], hashes[b][1]))
            if d <= max_bits:
                out.append((a, b, d))
    return out


# ------------------------------------------------------------------------------------------------ contact sheet
def contact_sheet(photos: Iterable[Photo], out: str | Path, *, cols: int = 10, cell: int = 132) -> Path:
    """A PNG grid of thumbnails with each picture's name and content label (256-colour, to stay small)."""
    from PIL import ImageDraw

    photos = sorted(photos, key=lambda p: (p.content, p.name))
    rows = (len(photos) + cols - 1) // cols
    label_h = 24
    sheet = Image.new("RGB", (cols * cell, rows * (cell + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, p in enumerate(photos):
        x, y = (i % cols) * cell, (i // cols) * (cell + label_h)
        thumb = p.image.copy()
        thumb.thumbnail((cell - 4, cell - 4), Image.LANCZOS)
        sheet.paste(thumb, (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2))
        draw.text((x + 3, y + cell), p.name[:22], fill="black")
        draw.text((x + 3, y + cell + 11), p.content, fill=(150, 40, 40))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    return out


# ------------------------------------------------------------------------------------------------ CLI
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m piaa.photos", description="The photo pool: fetch, verify, show.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download, verify and store the manifest's pictures (idempotent)")
    f.add_argument("--dest", default=None, help="pool folder (default $PIAA_CACHE_DIR/photo-pool)")
    f.add_argument("--debs", default=None, help="folder already holding the .deb files (skips apt-get download)")
    s = sub.add_parser("sheet", help="render a contact sheet (PNG) of the pool")
    s.add_argument("--out", default="docs/photo_pool.png")
    s.add_argument("--pool", default=None, help="pool folder (default $PIAA_CACHE_DIR/photo-pool)")
    d = sub.add_parser("dups", help="list near-duplicate pairs among the pictures of a folder")
    d.add_argument("folder")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "fetch":
            fetch_pool(args.dest, debs=args.debs)
        elif args.cmd == "sheet":
            photos = pool_photos(args.pool)
            print(f"contact sheet of {len(photos)} pictures -> {contact_sheet(photos, args.out)}")
        else:
            pics = {p.name: p.image for p in folder_photos(args.folder)}
            for a, b, dist in near_duplicates(pics):
                print(f"{a}  {b}  {dist} bits")
    except (PoolError, FileNotFoundError, ImageDecodeError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
