"""The one image decoder against a corpus of awkward and broken files generated here."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from piaa.images import ImageDecodeError, load_image


def _jpeg(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


def _png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


@pytest.fixture()
def photo():
    rng = np.random.default_rng(0)
    arr = np.zeros((60, 80, 3), np.uint8)
    arr[:, :40] = (200, 30, 30)  # red left half
    arr[:, 40:] = (30, 30, 200)  # blue right half
    arr += rng.integers(0, 10, arr.shape, dtype=np.uint8)
    return Image.fromarray(arr)


def test_zero_bytes(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(ImageDecodeError, match="empty.jpg.*empty"):
        load_image(p)


def test_text_named_jpg(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not a picture\n" * 20)
    with pytest.raises(ImageDecodeError, match="notes.jpg.*not an image"):
        load_image(p)


def test_missing_file(tmp_path):
    with pytest.raises(ImageDecodeError, match="nope.png.*no such file"):
        load_image(tmp_path / "nope.png")


def test_truncated_jpeg(tmp_path, photo):
    data = _jpeg(photo.resize((400, 300)), quality=95)
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError, match="cut.jpg.*truncated"):
        load_image(p)


def test_cmyk_jpeg(tmp_path, photo):
    p = tmp_path / "cmyk.jpg"
    p.write_bytes(_jpeg(photo.convert("CMYK"), quality=95))
    assert Image.open(p).mode == "CMYK"
    img = load_image(p)
    assert img.mode == "RGB" and img.size == (80, 60)
    r, g, b = np.asarray(img)[30, 10].astype(int)
    assert r > 150 and b < 100  # still red on the left


def test_16bit_png(tmp_path):
    ramp = (np.linspace(0, 65535, 64 * 32).reshape(32, 64)).astype(np.uint16)
    p = tmp_path / "deep.png"
    Image.fromarray(ramp).save(p)  # mode I;16
    assert Image.open(p).mode.startswith("I")
    img = load_image(p)
    arr = np.asarray(img)
    assert img.mode == "RGB"
    assert arr[0, 0, 0] < 5 and arr[-1, -1, 0] > 250  # full range kept, not clipped to black/white


def test_palette_png_with_transparency(tmp_path):
    img = Image.new("P", (20, 10), 0)
    img.putpalette([0, 0, 0] + [255, 0, 0] + [0] * (254 * 3))
    img.paste(1, (10, 0, 20, 10))
    p = tmp_path / "pal.png"
    img.save(p, transparency=0)
    out = np.asarray(load_image(p))
    assert tuple(out[5, 2]) == (255, 255, 255)  # transparent -> white background
    assert tuple(out[5, 15]) == (255, 0, 0)


def test_rgba_and_la(tmp_path):
    rgba = Image.new("RGBA", (8, 8), (0, 255, 0, 0))
    la = Image.new("LA", (8, 8), (100, 255))
    assert tuple(np.asarray(load_image(_png(rgba)))[0, 0]) == (255, 255, 255)
    assert tuple(np.asarray(load_image(_png(la)))[0, 0]) == (100, 100, 100)


def test_exif_rotated_jpeg(tmp_path, photo):
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    p = tmp_path / "rot.jpg"
    p.write_bytes(_jpeg(photo, exif=exif.tobytes(), quality=95))
    img = load_image(p)
    assert img.size == (60, 80)  # upright: portrait
    arr = np.asarray(img).astype(int)
    assert arr[5, 30, 0] > 150 and arr[-5, 30, 2] > 150  # red half now on top, blue at the bottom


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    )


def test_decompression_bomb_header(tmp_path):
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_header_only(60000, 60000))  # 3.6 Gpx claimed by a 60-byte file
    with pytest.raises(ImageDecodeError, match="bomb.png.*(too large|bomb)"):
        load_image(p)


def test_draft_reduces_large_jpeg(tmp_path, photo):
    p = tmp_path / "big.jpg"
    p.write_bytes(_jpeg(photo.resize((1600, 1200)), quality=90))
    small = load_image(p, min_side=224)
    assert min(small.size) >= 224 and small.size[0] <= 800  # decoded at 1/2 or 1/4 scale, not full size
    full = load_image(p)
    assert full.size == (1600, 1200)


def test_bytes_and_stream_sources(photo):
    data = _png(photo)
    assert load_image(data).size == (80, 60)
    assert load_image(io.BytesIO(data)).size == (80, 60)
    with pytest.raises(ImageDecodeError, match="<bytes>"):
        load_image(b"garbage" * 10)


def test_decompression_bomb_message_gives_size_and_limit(tmp_path, monkeypatch):
    monkeypatch.delenv("PIAA_MAX_IMAGE_PIXELS", raising=False)
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_header_only(60000, 60000))
    with pytest.raises(ImageDecodeError) as err:
        load_image(p)
    msg = str(err.value)
    assert "bomb.png" in msg and "60000\u00d760000 = 3600.0 megapixels" in msg
    assert "limit of 120.0 megapixels" in msg and "PIAA_MAX_IMAGE_PIXELS" in msg


def test_95_megapixel_photo_loads_under_the_default_limit(tmp_path, monkeypatch):
    """PIL warns above 89.5 Mpx; that warning used to be escalated into a refusal below our documented 120 Mpx."""
    monkeypatch.delenv("PIAA_MAX_IMAGE_PIXELS", raising=False)
    p = tmp_path / "pano.jpg"
    Image.new("L", (10000, 9500), 90).save(p, "JPEG", quality=50)  # solid colour: ~1 MB on disk
    img = load_image(p, min_side=224)  # decoded at 1/8 scale with draft: cheap
    assert img.mode == "RGB" and img.size == (1250, 1188)
    assert tuple(np.asarray(img)[600, 600]) == (90, 90, 90)
    monkeypatch.setenv("PIAA_MAX_IMAGE_PIXELS", "90_000_000")  # read at call time, not import time
    with pytest.raises(ImageDecodeError, match=r"pano\.jpg: .*10000\u00d79500 = 95\.0 megapixels.*limit of 90\.0"):
        load_image(p, min_side=224)


def test_limit_is_read_at_call_time_and_overrides_pil(tmp_path, monkeypatch, photo):
    p = tmp_path / "small.png"
    photo.save(p)  # 80x60 = 4800 pixels
    monkeypatch.setenv("PIAA_MAX_IMAGE_PIXELS", "4000")
    with pytest.raises(ImageDecodeError) as err:
        load_image(p)
    msg = str(err.value)
    assert "80\u00d760 = 0.0048 megapixels" in msg and "4,000 pixels" in msg and "PIAA_MAX_IMAGE_PIXELS=" in msg
    assert load_image(p, max_pixels=5000).size == (80, 60)  # an explicit argument wins over the environment
    # a limit above PIL's own error threshold (2 x Image.MAX_IMAGE_PIXELS) is honoured, PIL's global left alone
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    monkeypatch.setenv("PIAA_MAX_IMAGE_PIXELS", "1_000_000")
    assert load_image(p).size == (80, 60)
    assert load_image(p.read_bytes()).size == (80, 60)
    assert Image.MAX_IMAGE_PIXELS == 1000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(p)  # other PIL users still have PIL's guard
    monkeypatch.setenv("PIAA_MAX_IMAGE_PIXELS", "4799")
    with pytest.raises(ImageDecodeError, match=r"80\u00d760"):
        load_image(p)


@pytest.mark.parametrize("value", ["lots", "0", "-5"])
def test_bad_limit_variable_is_named(tmp_path, monkeypatch, photo, value):
    p = tmp_path / "x.png"
    photo.save(p)
    monkeypatch.setenv("PIAA_MAX_IMAGE_PIXELS", value)
    with pytest.raises(ValueError, match=rf"PIAA_MAX_IMAGE_PIXELS='{value}' must be a positive whole number"):
        load_image(p)


def test_unseekable_stream_bomb_is_refused_with_its_size():
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes):
            self._buf = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, b):
            chunk = self._buf.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)

    with pytest.raises(ImageDecodeError, match="60000\u00d760000"):
        load_image(Pipe(_png_header_only(60000, 60000)))
    assert load_image(Pipe(_png(Image.new("RGB", (5, 4), (1, 2, 3))))).size == (5, 4)
