"""piaa.features: one content-keyed cache naming scheme, and the per-image error policy of batch decoding."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from piaa.features import cache_file, encode_images, iter_pixel_batches
from piaa.images import ImageDecodeError


class _Mean(torch.nn.Module):
    """A stand-in encoder: per-channel means as 'pooled' features (fast, deterministic)."""

    name, image_size = "mean-encoder", 32

    def preprocess(self, images):
        return torch.stack([torch.from_numpy(np.asarray(im.resize((32, 32)), dtype=np.float32)).permute(2, 0, 1)
                            for im in images])  # fmt: skip

    def forward(self, x):
        from piaa.vision import VisionOutput

        return VisionOutput(tokens=x.flatten(2).transpose(1, 2), pooled=x.mean(dim=(2, 3)))


@pytest.fixture
def files(tmp_path):
    paths = []
    for i, v in enumerate([10, 200, 90, 160]):
        paths.append(tmp_path / f"p{i}.png")
        Image.fromarray(np.full((40, 40, 3), v, np.uint8)).save(paths[-1])
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    return paths, [tmp_path / "empty.jpg", tmp_path / "text.jpg"]


def test_bad_files_are_skipped_with_their_reason_and_the_rest_encoded(files):
    good, bad = files
    paths = [good[0], bad[0], good[1], good[2], bad[1], good[3]]
    errors: dict[int, str] = {}
    batches = list(iter_pixel_batches(_Mean(), paths, batch_size=4, errors=errors))
    assert [i for idx, _ in batches for i in idx] == [0, 2, 3, 5]
    assert set(errors) == {1, 4} and "empty.jpg" in errors[1] and "text.jpg" in errors[4]
    with pytest.raises(ImageDecodeError, match="empty.jpg"):
        list(iter_pixel_batches(_Mean(), paths, batch_size=4))  # the "raise" policy
    errors = {}
    feats = encode_images(_Mean(), paths, keep=("pooled",), progress=False, errors=errors)["pooled"]
    assert feats.shape == (6, 3) and torch.all(feats[[1, 4]] == 0) and set(errors) == {1, 4}
    assert feats[0, 0] == pytest.approx(10, abs=0.5) and feats[5, 0] == pytest.approx(160, abs=0.5)


def test_cache_is_content_keyed(files, tmp_path):
    good, _ = files
    enc = _Mean()
    a = encode_images(enc, good, cache=tmp_path / "cache", progress=False)
    (written,) = list((tmp_path / "cache").iterdir())
    assert written == cache_file(tmp_path / "cache", enc, good, ("pooled",)) and written.name.startswith(
        "mean-encoder-"
    )
    assert cache_file(tmp_path / "cache", enc, good[:3], ("pooled",)) != written  # other files: another name
    assert torch.equal(encode_images(enc, good, cache=tmp_path / "cache", progress=False)["pooled"], a["pooled"])
    Image.fromarray(np.full((40, 40, 3), 33, np.uint8)).save(good[0])  # same path, new content
    st = good[0].stat()
    os.utime(good[0], (st.st_atime, st.st_mtime + 5))
    b = encode_images(enc, good, cache=tmp_path / "cache", progress=False)["pooled"]
    assert b[0, 0] == pytest.approx(33, abs=0.5) and len(list((tmp_path / "cache").iterdir())) == 2


def test_the_same_lazy_pil_image_in_many_slots_is_read_safely(tmp_path):
    """Caller-given PIL images (lazy, maybe repeated) are not resized in the decoding threads: no shared-file race."""
    from piaa.models import create_vision_encoder

    enc = create_vision_encoder("efficientnet-lite0")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"n{i}.jpg")
        Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(paths[-1], quality=90)
    want = enc.preprocess([Image.open(p).convert("RGB") for p in paths])
    for _ in range(5):
        lazy = [Image.open(p) for p in paths] * 8  # each file object shared by 8 slots
        got = torch.cat([x for _, x in iter_pixel_batches(enc, lazy, batch_size=16, workers=8)])
        assert got.shape[0] == 32 and torch.allclose(got, want.repeat(8, 1, 1, 1))


def test_concurrent_writers_of_one_cache_file_never_share_a_temporary_file(tmp_path):
    import threading

    from piaa.files import unique_tmp

    target = tmp_path / "stats.npy"
    names, errors = set(), []

    def write(i: int) -> None:
        try:
            for _ in range(20):
                tmp = unique_tmp(target)
                names.add(tmp)
                np.save(tmp, np.full(1000, i))
                os.replace(tmp, target)
        except Exception as err:  # every writer's failure is reported
            errors.append(err)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(names) == 8  # one temporary name per writer
    assert all(p.parent == tmp_path and p.name.startswith(".") and p.suffix == ".npy" for p in names)
    final = np.load(target)
    assert len(set(final.tolist())) == 1  # a whole file from one writer, never a mix
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.npy"]  # no temporary file left behind
