"""Frontal faces in a photo, found by OpenCV's pretrained Haar cascade: frozen knowledge of what people look like.

:func:`face_fraction` is the share of the picture covered by frontal faces; :func:`face_stats` measures files in
threads (the loop and cache of :func:`piaa.photostats.measure_files`). The detector and its settings are those of
OpenCV's own face-detection sample (``samples/python/facedetect.py``): the ``haarcascade_frontalface_alt.xml``
cascade (Lienhart's boosted Haar features after Viola & Jones 2001), a histogram-equalised grey image,
``scaleFactor=1.3``, ``minNeighbors=4``, ``minSize=(30, 30)``; pictures are measured with their long side at
:data:`FACE_SIDE` pixels, a camera-frame size like the sample's, so a camera file and its downsized copy agree
(down to that size; smaller pictures are measured as they are).
The cascade files ship in the ``opencv-python-headless`` wheel (``cv2.data``; the 5.x wheels dropped them, hence
the version bound in ``pyproject.toml``). pmllm's grounded reading (:mod:`pmllm.grounding`) uses it as evidence
for the *people* concept, which ImageNet's classes barely name.

Library module, no entry point::

    from piaa.faces import face_fraction, face_stats
    face_fraction(Image.open("portrait.jpg"))   # e.g. 0.17
    face_stats(["a.jpg", "b.png"], errors={})   # (2,) array; NaN (and the reason in errors) for a bad file
"""

from __future__ import annotations

import hashlib
import threading

import numpy as np
from PIL import Image

FACE_SIDE = 640  # long side (pixels) at which faces are looked for
CASCADE = "haarcascade_frontalface_alt.xml"
DETECT = {"scaleFactor": 1.3, "minNeighbors": 4, "minSize": (30, 30)}  # OpenCV's facedetect.py sample
CACHE_NAME = "faces-" + hashlib.sha1(f"{CASCADE}|{sorted(DETECT.items())}".encode()).hexdigest()[:8]  # cache key
_IMPORT = threading.Lock()  # cv2's loader swaps modules while importing: a second thread could see it half-built
_FREE: list = []  # loaded classifiers not in use: one per concurrent caller (CascadeClassifier is not documented
_FREE_LOCK = threading.Lock()  # thread-safe), kept across calls (measure_files' worker threads are new each call)


def _cv2():
    """The fully imported cv2 module (imported by one thread at a time; measure_files runs in threads)."""
    with _IMPORT:
        import cv2

        return cv2


def cascade_file() -> str | None:
    """Path of the face cascade in the installed OpenCV, or None (no cv2, or a cv2 without the wheel's cv2.data)."""
    import os

    try:
        folder = _cv2().data.haarcascades
    except (ImportError, AttributeError):
        return None
    return folder + CASCADE if os.path.isfile(folder + CASCADE) else None


def _detect(grey: np.ndarray):
    """Face boxes in an equalised grey image, with a classifier taken from (and given back to) the free list."""
    cv2 = _cv2()
    with _FREE_LOCK:
        cascade = _FREE.pop() if _FREE else None
    if cascade is None:
        path = cascade_file()
        cascade = cv2.CascadeClassifier(path) if path else None
        if cascade is None or cascade.empty():
            raise RuntimeError(f"OpenCV's face cascade {CASCADE} is missing: install opencv-python-headless<5")
    try:
        return cascade.detectMultiScale(grey, flags=cv2.CASCADE_SCALE_IMAGE, **DETECT)
    finally:
        with _FREE_LOCK:
            _FREE.append(cascade)


def face_fraction(img: Image.Image | np.ndarray) -> float:
    """Share of the picture (in [0, 1]) inside the boxes of the frontal faces found; 0 when none is found."""
    cv2 = _cv2()
    grey = np.asarray(img.convert("L") if isinstance(img, Image.Image) else Image.fromarray(img).convert("L"))
    h, w = grey.shape
    f = FACE_SIDE / max(h, w)
    if f < 1:
        grey = cv2.resize(grey, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    faces = _detect(cv2.equalizeHist(grey))
    area = sum(int(bw) * int(bh) for _, _, bw, bh in faces) if len(faces) else 0
    return min(1.0, area / grey.size)


def _faces_of_file(path) -> np.ndarray:
    from piaa.images import load_image

    img = path if isinstance(path, Image.Image) else load_image(path, min_side=FACE_SIDE)  # JPEGs: reduced decode
    return np.array([face_fraction(img)], dtype=np.float64)


def face_stats(paths, errors: dict[int, str] | None = None, workers: int = 2, cache=None,
               progress: bool = False) -> np.ndarray:  # fmt: skip
    """``(n,)`` :func:`face_fraction` of image files (or PIL images); ``errors`` and ``cache`` as for
    :func:`piaa.photostats.photo_stats` (NaN for a file that cannot be decoded)."""
    from piaa.photostats import measure_files

    out = measure_files(paths, _faces_of_file, ("face_fraction",), (CACHE_NAME, FACE_SIDE), errors=errors,
                        workers=workers, cache=cache, progress=progress, desc="faces")  # fmt: skip
    return out[:, 0]
