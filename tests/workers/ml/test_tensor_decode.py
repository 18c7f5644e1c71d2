"""workers.ml.data.tensor_decode, ``"cpu"`` preprocessing: a batch holds exactly Pillow's pixels
through the worker transform and its error messages, odd and damaged files included; EXIF
and XMP orientation is applied on the device path too; the forward's thread split."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image, PngImagePlugin
from torchvision import transforms as tvt

from app.imagedata.decode import decode_image
from app.imagedata.errors import DecodeError
from app.imagedata.layout import FileSource
from workers.ml.data.tensor_decode import NATIVE, ImageBatches, passthrough
from workers.ml.gpu_preprocess import split_for_device
from workers.ml.loop import ThreadSplit
from workers.ml.models import LoadedModel


def _image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((height, width, 3)) * 255).astype(np.uint8))


def _png(image: Image.Image, **kw: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", **kw)
    return buf.getvalue()


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, whole chunk) of a PNG."""
    pos, out = 8, []
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        out.append((kind, data[pos : pos + 12 + length]))
        pos += 12 + length
    return out


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = struct.pack(">I", zlib.crc32(kind + body))
    return struct.pack(">I", len(body)) + kind + body + crc


def _insert_before_iend(data: bytes, chunk: bytes) -> bytes:
    return data[:-12] + chunk + data[-12:]


def _orientation_pngs(image: Image.Image) -> dict[str, bytes]:
    """PNGs that Pillow rotates (EXIF orientation 6) although libpng would not."""
    exif = Image.Exif()
    exif[0x0112] = 6
    raw = exif.tobytes()
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
        '22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
        'tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>'
    )
    with_xmp, with_text = PngImagePlugin.PngInfo(), PngImagePlugin.PngInfo()
    with_xmp.add_itxt("XML:com.adobe.xmp", xmp)
    with_text.add_text("Raw profile type exif", f"\nexif\n{len(raw):8d}\n{raw.hex()}\n")
    return {
        "xmp.png": _png(image, pnginfo=with_xmp),
        "exif_text.png": _png(image, pnginfo=with_text),
        "exif_after_idat.png": _insert_before_iend(_png(image), _chunk(b"eXIf", raw)),
    }


def _files(size: tuple[int, int]) -> dict[str, bytes]:
    """Ordinary, odd and damaged images of `size` (w, h)."""
    rgb = _image(*size, seed=size[0])
    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgb.size))
    good = _png(rgb)
    with_text = PngImagePlugin.PngInfo()
    with_text.add_text("Comment", "made by a test")
    bad_crc = bytearray(_png(rgb, pnginfo=with_text))
    _, text = next(c for c in _chunks(bytes(bad_crc)) if c[0] == b"tEXt")
    bad_crc[bytes(bad_crc).index(text) + len(text) - 1] ^= 0xFF
    return {
        "rgb.png": good,
        "interlaced.png": _png(rgb, interlace=1),
        "grey.png": _png(rgb.convert("L")),
        "palette4.png": _png(pal, bits=4),
        "palette_t.png": _png(pal, transparency=0),
        "rgba.png": _png(rgba),
        "text_comment.png": _png(rgb, pnginfo=with_text),
        "bad_crc_text.png": bytes(bad_crc),
        "no_iend.png": good[:-12],
        "truncated.png": good[:-40],
        "garbage.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 50,
        "rgb.jpg": _encode_jpeg(rgb),
        "text.jpg": b"not an image at all",
        **_orientation_pngs(rgb),
    }


def _encode_jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _write(tmp_path: Path, files: dict[str, bytes]) -> list[str]:
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return sorted(files)


def test_orientation_metadata_keeps_pillows_rotation_on_the_device_path(
    tmp_path: Path,
) -> None:
    """Pillow rotates PNGs by EXIF/XMP orientation found in text chunks or after the image
    data (libpng would not); the device path's images are Pillow's."""
    names = _write(tmp_path, _orientation_pngs(_image(20, 14)))
    dataset = ImageBatches(FileSource(tmp_path), names, NATIVE)
    for i, name in enumerate(names):
        tensor, _, error = dataset[i]
        assert not error and tensor.shape == (3, 20, 14), name
        assert torch.equal(tensor, NATIVE(decode_image(tmp_path / name, name=name)))


def _reference(root: Path, name: str, worker: Callable) -> tuple[torch.Tensor | None, str]:
    """(worker transform of Pillow's image, "") or (None, the DecodeError's message)."""
    try:
        return worker(decode_image(root / name, name=name)), ""
    except DecodeError as exc:
        return None, str(exc)


@pytest.mark.parametrize("image_size", [(16, 16), (20, 14)])
@pytest.mark.parametrize("model_size", [16, 24])
def test_a_batch_holds_pillows_pixels_and_errors(
    tmp_path: Path, image_size: tuple[int, int], model_size: int
) -> None:
    """Same pixels and errors as Pillow's decoder and the worker transform, image by image,
    whether the transform changes the image's size or not."""
    worker, _ = split_for_device(open_clip.image_transform(model_size, is_train=False))
    names = [*_write(tmp_path, _files(image_size)), "missing.png"]
    batched = ImageBatches(FileSource(tmp_path), names, worker)
    indices = list(range(len(names)))[::-1]
    pixels, index, errors = batched.__getitems__(indices)
    assert pixels.dtype == torch.uint8 and pixels.shape == (len(names), 3, model_size, model_size)
    assert index == indices
    for k, i in enumerate(indices):
        expected, error = _reference(tmp_path, names[i], worker)
        assert errors[k] == error, names[i]
        zeros = torch.zeros_like(pixels[k])
        assert torch.equal(pixels[k], expected if expected is not None else zeros), names[i]
        assert torch.equal(batched[i][0], pixels[k]) and batched[i][2] == error, names[i]
    failed = {names[i] for k, i in enumerate(indices) if errors[k]}
    # Pillow checks every chunk's CRC; it decodes a PNG without IEND.
    assert failed == {"bad_crc_text.png", "truncated.png", "garbage.png", "text.jpg", "missing.png"}


@pytest.mark.parametrize("size", [32, 300])
def test_batched_dataset_through_a_dataloader(
    tmp_path: Path, tiny_model: LoadedModel, size: int
) -> None:
    """Whole batches come out of a worker, small images and large: the embedding loop gets
    the pixels of an in-process decode."""
    worker, _ = split_for_device(open_clip.image_transform(size, is_train=False))
    names = _write(tmp_path, {f"{i}.png": _png(_image(size, size, seed=i)) for i in range(10)})
    dataset = ImageBatches(FileSource(tmp_path), names, worker)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=[[0, 1, 2, 3], [4, 5, 6, 7, 8, 9]], num_workers=1,
        collate_fn=passthrough,
    )  # fmt: skip
    batches = list(loader)
    assert [b[1] for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7, 8, 9]]
    assert all(isinstance(b[0], torch.Tensor) for b in batches)
    pixels = torch.cat([b[0] for b in batches])
    expected = torch.stack([worker(decode_image(tmp_path / n)) for n in names])
    assert torch.equal(pixels, expected)
    in_process, _, _ = dataset.__getitems__([0, 1])
    assert isinstance(in_process, torch.Tensor) and torch.equal(in_process, expected[:2])


def test_any_worker_transform_is_applied_to_every_image(tmp_path: Path) -> None:
    worker = tvt.Compose([tvt.Grayscale(3), tvt.PILToTensor()])
    names = _write(tmp_path, {"a.png": _png(_image(8, 8)), "b.png": _png(_image(8, 8, 1))})
    batched = ImageBatches(FileSource(tmp_path), names, worker)
    pixels, _, errors = batched.__getitems__([0, 1])
    assert errors == ["", ""]
    for k, name in enumerate(names):
        assert torch.equal(pixels[k], worker(decode_image(tmp_path / name)))


class FakeClock:
    """A clock that moves only when told: the thread split's timing without the scheduler."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _timed_batches(clock: FakeClock, n: int, delay_s: float, prefetched: int = 0) -> Iterator[int]:
    """n batches, each after `delay_s` of fake waiting, except the first `prefetched`."""
    for i in range(n):
        if i >= prefetched:
            clock.advance(delay_s)
        yield i


@pytest.fixture
def two_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _drain(
    split: ThreadSplit, batches: Iterator[int], clock: FakeClock, busy_s: float
) -> list[int]:
    """Consume like the loop does: work `busy_s` per batch; the thread counts seen."""
    seen = []
    while split.next(batches) is not None:
        seen.append(torch.get_num_threads())
        clock.advance(busy_s)
    split.restore()
    return seen


def _split(device: str = "cpu", workers: int = 1) -> tuple[ThreadSplit, FakeClock]:
    clock = FakeClock()
    return ThreadSplit.for_run(torch.device(device), workers, clock=clock), clock


def test_thread_split_gives_decoding_a_core_when_the_loop_waits(two_threads: None) -> None:
    split, clock = _split()
    seen = _drain(split, _timed_batches(clock, 10, delay_s=0.02), clock, busy_s=0.001)
    # the first window (batches 2-5) waited 95% of its time: one thread from batch 5 on
    assert seen == [2] * split.window + [1] * 6
    assert torch.get_num_threads() == 2  # restored


def test_thread_split_sees_waits_behind_prefetched_batches(two_threads: None) -> None:
    split, clock = _split()
    seen = _drain(split, _timed_batches(clock, 20, delay_s=0.02, prefetched=9), clock, 0.001)
    assert seen[:9] == [2] * 9 and seen[-1] == 1


def test_thread_split_switches_at_the_wait_share_and_not_below(two_threads: None) -> None:
    # per batch: wait w, work 1 - w; a window's wait share is w (the threshold is 10%)
    for wait, switches in ((0.09, False), (0.11, True)):
        split, clock = _split()
        seen = _drain(split, _timed_batches(clock, 12, delay_s=wait), clock, busy_s=1 - wait)
        assert (seen[-1] == 1) is switches, (wait, seen)


def test_thread_split_keeps_all_threads_when_the_forward_dominates(two_threads: None) -> None:
    split, clock = _split()
    assert _drain(split, _timed_batches(clock, 10, delay_s=0.0), clock, busy_s=0.005) == [2] * 10
    for device, workers in (("cuda", 1), ("cpu", 0)):
        split, clock = _split(device, workers)
        seen = _drain(split, _timed_batches(clock, 8, delay_s=0.01), clock, busy_s=0.0)
        assert seen == [2] * 8


def test_embeddings_do_not_depend_on_the_thread_count(
    tiny_model: LoadedModel, two_threads: None
) -> None:
    x = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = []
    for threads in (2, 1):
        torch.set_num_threads(threads)
        with torch.inference_mode():
            out.append(tiny_model.model.encode_image(x))
    assert torch.equal(out[0], out[1])


def test_default_workers_start_no_process_for_a_single_batch() -> None:
    import os

    from workers.ml.loop import default_workers

    cpus = os.cpu_count() or 1
    for device, cap in ((torch.device("cpu"), 4), (torch.device("cuda"), 16)):
        assert default_workers(device, 1) == 0  # nothing to overlap decoding with
        assert default_workers(device, 2) == default_workers(device) == max(1, min(cap, cpus - 1))
