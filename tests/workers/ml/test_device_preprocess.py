"""Device-side preprocessing (``preprocess="device"``), checked on CPU tensors: the same
functions run on CUDA. Pixels agree with open_clip's Pillow transform to a level or two,
embeddings with the CPU path to cosine >= 0.999, odd images decode exactly as before, and
resume/shard merges stay byte-identical within the mode."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from torchvision import transforms as tvt

from app.imagedata import DatasetLayout, open_dataset
from app.imagedata.decode import decode_image
from app.imagedata.layout import FileSource
from workers.ml.data.tensor_decode import NATIVE, ImageBatches
from workers.ml.embed import embed_dataset
from workers.ml.gpu_preprocess import (
    DevicePreprocess,
    from_transform,
    resize_matrix,
    resolve_preprocess,
)
from workers.ml.models import LoadedModel
from workers.ml.shards import merge_shards, plan_shards

from .test_resume_shards import InterruptError, _same_bytes

EVAL_224 = open_clip.image_transform(224, is_train=False)


def _levels(a: torch.Tensor, b: torch.Tensor, step: DevicePreprocess) -> torch.Tensor:
    """|a - b| of two normalised images in 0..255 grey levels."""
    return ((a - b) * torch.tensor(step.std).view(-1, 1, 1) * 255).abs()


def _smooth_image(width: int, height: int, seed: int) -> Image.Image:
    """Random colour blobs: a natural-ish image (noise upsampled), not pure noise."""
    rng = np.random.default_rng(seed)
    small = (rng.random((max(2, height // 4), max(2, width // 4), 3)) * 255).astype(np.uint8)
    return Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)


def test_transform_is_parsed_and_modes_resolve(tiny_model: LoadedModel) -> None:
    step = from_transform(tiny_model.preprocess)
    assert step is not None and step.resize == 32 and step.crop == (32, 32)
    assert step.mode == "bicubic" and step.mean == pytest.approx(
        (0.48145466, 0.4578275, 0.40821073)
    )
    assert from_transform(tvt.Compose([tvt.Grayscale(), tvt.ToTensor()])) is None
    assert resolve_preprocess("auto", tiny_model.preprocess, torch.device("cpu")) == "cpu"
    assert resolve_preprocess("auto", tiny_model.preprocess, torch.device("cuda")) == "device"
    assert resolve_preprocess("device", tiny_model.preprocess, torch.device("cpu")) == "device"
    with pytest.raises(ValueError, match="cannot reproduce"):
        resolve_preprocess("device", tvt.Compose([tvt.ToTensor()]), torch.device("cpu"))
    with pytest.raises(ValueError, match="preprocess must be"):
        resolve_preprocess("gpu", tiny_model.preprocess, torch.device("cpu"))


@pytest.mark.parametrize("size", [(32, 32), (64, 64), (64, 48), (300, 200), (500, 700)])
def test_pixels_match_open_clip_preprocess(size: tuple[int, int]) -> None:
    """Tolerance: Pillow resamples in fixed point (rounding its coefficients), torch in
    float; both round to uint8 after each pass. Measured: at most 2 levels, under 1% of
    values differ at all; we allow 2 levels and 2%."""
    step = from_transform(EVAL_224)
    assert step is not None
    image = _smooth_image(*size, seed=sum(size))
    ours = step(NATIVE(image)[None])[0]
    theirs = EVAL_224(image)
    assert ours.shape == theirs.shape == (3, 224, 224)
    diff = _levels(ours, theirs, step)
    assert diff.max() <= 2.0 + 1e-3
    assert (diff > 0.5).float().mean() <= 0.02


def test_noise_and_downsampling_also_match() -> None:
    """Pure noise (worst case for overshoot clipping) up- and downsampled."""
    step = from_transform(EVAL_224)
    assert step is not None
    rng = np.random.default_rng(1)
    for w, h in ((40, 30), (640, 480)):
        image = Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8))
        diff = _levels(step(NATIVE(image)[None])[0], EVAL_224(image), step)
        assert diff.max() <= 2.0 + 1e-3 and (diff > 0.5).float().mean() <= 0.02


def test_mixed_sizes_equal_per_image_and_crop_pads_like_torchvision() -> None:
    step = from_transform(EVAL_224)
    assert step is not None
    images = [NATIVE(_smooth_image(w, h, w)) for w, h in ((64, 64), (50, 90), (64, 64))]
    batch = step(images)
    for i, image in enumerate(images):
        assert torch.equal(batch[i], step(image[None])[0])
    small = torch.rand(2, 3, 5, 6) * 255
    ours = DevicePreprocess(None, (8, 9), (0.0,) * 3, (1.0,) * 3).geometry(small)
    assert torch.equal(ours, tvt.functional.center_crop(small.float(), [8, 9]))


def _reference_geometry(step: DevicePreprocess, x: torch.Tensor) -> torch.Tensor:
    """The definition, in float64: two antialiased interpolate passes (width, then height),
    each clamped and rounded, then torchvision's centre crop."""
    h, w = x.shape[-2:]
    new_h, new_w = step.output_size(h, w)
    y = x.double()
    for size in ((h, new_w), (new_h, new_w)):
        if size != tuple(y.shape[-2:]):
            y = torch.nn.functional.interpolate(
                y, size=size, mode=step.mode, antialias=True, align_corners=False
            )
            y = y.clamp(0, 255).round()
    return tvt.functional.center_crop(y, list(step.crop)) if step.crop else y


@pytest.mark.parametrize("n_in,n_out,crop", [(32, 224, 224), (64, 224, 224), (50, 224, 200),
                                             (7, 10, 16), (5, 9, 9), (64, 75, 64)])  # fmt: skip
@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
def test_resize_matrix_is_the_interpolate_kernel(
    n_in: int, n_out: int, crop: int, mode: str
) -> None:
    """x @ W equals float64 interpolate (then crop or zero-pad like torchvision) on random
    rows; W's columns are convex-ish weights summing to 1 (0 for padded columns)."""
    m = resize_matrix(n_in, n_out, crop, mode, torch.device("cpu")).double()
    assert m.shape == (n_in, crop) and m.dtype == torch.float64
    rows = torch.rand(4, 3, 5, n_in, dtype=torch.float64) * 255
    full = torch.nn.functional.interpolate(
        rows, size=(5, n_out), mode=mode, antialias=True, align_corners=False
    )
    expected = tvt.functional.center_crop(full, [5, crop])
    assert torch.allclose(rows @ m, expected, atol=1e-4)  # W is float32: 255 x 2^-24 x taps
    sums = m.sum(0)
    pad = max(crop - n_out, 0)
    inside = torch.ones(crop, dtype=torch.bool)
    inside[: pad // 2] = False
    inside[crop - (pad + 1) // 2 :] = False
    assert torch.allclose(sums[inside], torch.ones(int(inside.sum()), dtype=torch.float64))
    assert torch.all(sums[~inside] == 0)


@pytest.mark.parametrize("size", [(32, 32), (64, 48), (50, 90), (224, 224), (300, 200), (500, 700)])
def test_geometry_equals_the_float64_definition(size: tuple[int, int]) -> None:
    """Up-sizing runs as matrix products, down-sizing through interpolate; both agree with
    the float64 definition except where a value sits on a rounding boundary (.5) in float32:
    a level there, two where the first pass's flip passes through the second's overshoot,
    on under 0.1% of values (measured: 0.001-0.06%; PyTorch's float32 kernel alone: up to
    0.6%)."""
    step = from_transform(EVAL_224)
    assert step is not None
    x = torch.from_numpy(np.random.default_rng(sum(size)).integers(0, 256, (6, 3, *size)))
    x = x.to(torch.uint8)
    ours = step.geometry(x)
    reference = _reference_geometry(step, x)
    assert ours.shape == reference.shape == (6, 3, 224, 224)
    diff = (ours.double() - reference).abs()
    assert diff.max() <= 2.0 and (diff > 0).double().mean() <= 1e-3


def test_channels_last_output_and_the_fused_normalisation() -> None:
    """On CUDA the batch comes out channels-last (as the model reads it); values are those
    of the contiguous layout, and y * a + b is (y / 255 - mean) / std to float32 rounding."""
    step = from_transform(EVAL_224)
    assert step is not None
    x = torch.from_numpy(np.random.default_rng(5).integers(0, 256, (4, 3, 40, 56)))
    x = x.to(torch.uint8)
    flat = step(x, channels_last=False)
    last = step(x, channels_last=True)
    assert flat.is_contiguous() and last.is_contiguous(memory_format=torch.channels_last)
    assert not last.is_contiguous()
    assert torch.allclose(flat, last, atol=1.01 / 255 / min(step.std))
    assert (flat != last).float().mean() <= 1e-3
    y = step.geometry(x)
    mean = torch.tensor(step.mean).view(1, -1, 1, 1)
    std = torch.tensor(step.std).view(1, -1, 1, 1)
    assert torch.allclose(step.normalise(y.clone()), (y / 255 - mean) / std, atol=2e-6)
    mixed = step([x[0], x[1, :, :30, :20], x[2]], channels_last=True)
    assert mixed.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(mixed[2], last[2])


def test_the_interpolate_kernel_can_be_asked_for(settings_env: Callable[[str, str], None]) -> None:
    """IIMM_DEVICE_RESIZE=interpolate: PyTorch's kernel, as before the matrix form (float32
    weights: close to, but not always, the same bytes)."""
    step = from_transform(EVAL_224)
    assert step is not None
    x = torch.from_numpy(np.random.default_rng(9).integers(0, 256, (4, 3, 64, 64)))
    x = x.to(torch.uint8)
    matrices = step.geometry(x)
    settings_env("IIMM_DEVICE_RESIZE", "interpolate")
    kernel = step.geometry(x)
    expected = (
        torch.nn.functional.interpolate(
            x.float(), size=(64, 224), mode="bicubic", antialias=True, align_corners=False
        )
        .clamp(0, 255)
        .round()
    )
    expected = (
        torch.nn.functional.interpolate(
            expected, size=(224, 224), mode="bicubic", antialias=True, align_corners=False
        )
        .clamp(0, 255)
        .round()
    )
    assert torch.equal(kernel, expected)
    assert not torch.equal(kernel, matrices)  # the float32 kernel's roundings differ somewhere
    assert (kernel - matrices).abs().max() <= 2


def test_tf32_matmuls_fall_back_to_interpolate() -> None:
    """TF32 would move pixels by a tenth of a level; with it on, CUDA uses interpolate.
    Checked in a fresh interpreter: PyTorch refuses to mix its two precision APIs."""
    code = (
        "import torch\n"
        "from workers.ml.gpu_preprocess import use_matrices\n"
        "cuda, cpu = torch.device('cuda'), torch.device('cpu')\n"
        "assert use_matrices(cuda) and use_matrices(cpu)\n"
        "torch.backends.cuda.matmul.fp32_precision = 'tf32'\n"
        "assert not use_matrices(cuda) and use_matrices(cpu)\n"
    )
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _encode(image: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def _odd_files() -> dict[str, bytes]:
    rgb = _smooth_image(20, 14, 3)
    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE)
    pal_t = pal.copy()
    pal_t.info["transparency"] = 0
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgb.size))
    return {
        "rgb.png": _encode(rgb, "PNG"),
        "grey.png": _encode(rgb.convert("L"), "PNG"),
        "palette.png": _encode(pal, "PNG"),
        "palette_t.png": _encode(pal_t, "PNG", transparency=0),
        "rgba.png": _encode(rgba, "PNG"),
        "la.png": _encode(rgba.convert("LA"), "PNG"),
        "i16.png": _encode(
            Image.fromarray(np.arange(280, dtype=np.uint16).reshape(14, 20) * 200), "PNG"
        ),
        "rgb.jpg": _encode(rgb, "JPEG", quality=95),
        "grey.jpg": _encode(rgb.convert("L"), "JPEG", quality=95),
        "cmyk.jpg": _encode(rgb.convert("CMYK"), "JPEG", quality=95),
        "exif.jpg": _encode(rgb, "JPEG", quality=95, exif=exif.tobytes()),
        "rgb.bmp": _encode(rgb, "BMP"),
        "truncated.png": _encode(rgb, "PNG")[:-30],
        "truncated.jpg": _encode(rgb, "JPEG")[:-40],
        "garbage.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 50,
        "text.jpg": b"not an image at all",
    }


def test_odd_images_decode_as_the_pillow_path(tmp_path: Path) -> None:
    files = _odd_files()
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    dataset = ImageBatches(FileSource(tmp_path), sorted(files), NATIVE)
    for i, name in enumerate(sorted(files)):
        tensor, index, error = dataset[i]
        assert index == i
        try:
            expected = NATIVE(decode_image(tmp_path / name, name=name))
        except Exception as exc:
            assert error == str(exc), name
            continue
        assert not error and torch.equal(tensor, expected), name


def test_decompression_bomb_limit_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "big.png").write_bytes(_encode(_smooth_image(64, 64, 0), "PNG"))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    _, _, error = ImageBatches(FileSource(tmp_path), ["big.png"], NATIVE)[0]
    assert "decompression-bomb" in error


def test_batches_stack_same_sizes_and_fill_failures(tmp_path: Path) -> None:
    a, b = _smooth_image(5, 4, 1), _smooth_image(5, 6, 2)
    (tmp_path / "a.png").write_bytes(_encode(a, "PNG"))
    (tmp_path / "b.png").write_bytes(_encode(b, "PNG"))
    (tmp_path / "bad.png").write_bytes(b"corrupt")
    dataset = ImageBatches(FileSource(tmp_path), ["a.png", "bad.png", "a.png", "b.png"], NATIVE)
    pixels, index, errors = dataset.__getitems__([0, 1, 2])
    assert isinstance(pixels, torch.Tensor) and pixels.shape == (3, 3, 4, 5)
    assert index == [0, 1, 2] and errors[0] == errors[2] == "" and "bad.png" in errors[1]
    assert pixels[1].sum() == 0 and torch.equal(pixels[0], NATIVE(a))
    mixed, _, _ = dataset.__getitems__([0, 3])
    assert isinstance(mixed, list) and [m.shape[1] for m in mixed] == [4, 6]
    failed, _, errors = dataset.__getitems__([1])
    assert isinstance(failed, torch.Tensor) and failed.shape == (1, 3, 8, 8) and errors[0]


@pytest.fixture(scope="module")
def mixed_task(tmp_path_factory: pytest.TempPathFactory) -> DatasetLayout:
    """The shapes task at 64 px (downsampled to the tiny model's 32) plus odd sizes."""
    from workers.ml.synth import generate_task

    root = generate_task("shapes", tmp_path_factory.mktemp("mixed"), per_class=8, seed=1, size=64)
    for i, path in enumerate(sorted(root.rglob("*.png"))[::5]):
        image = Image.open(path).convert("RGB")
        image.resize((48 + 7 * (i % 3), 64 - 5 * (i % 4)), Image.Resampling.BICUBIC).save(path)
    return open_dataset(root, seed=0)


def test_embeddings_and_zero_shot_agree_with_the_cpu_path(
    tiny_model: LoadedModel, mixed_task: DatasetLayout, tmp_path: Path
) -> None:
    kw = {"split": "train", "batch_size": 8, "resume": False}
    cpu = embed_dataset(tiny_model, mixed_task, out_dir=tmp_path / "c", num_workers=0, **kw)
    dev = embed_dataset(
        tiny_model, mixed_task, out_dir=tmp_path / "d", num_workers=2, preprocess="device", **kw
    )
    a, b = cpu.images().astype(np.float32), dev.images().astype(np.float32)
    cosine = (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() >= 0.999, cosine.min()
    meta = json.loads((tmp_path / "d" / "meta.json").read_text())
    assert meta["preprocess"] == "device" and meta["run_key"] != cpu.meta["run_key"]
    top_cpu, top_dev = np.load(tmp_path / "c" / "topk.npy"), np.load(tmp_path / "d" / "topk.npy")
    texts = cpu.texts().astype(np.float32)
    for row in np.flatnonzero(top_cpu[:, 0] != top_dev[:, 0]):  # only near-ties may differ
        logits = np.sort(a[row] @ texts.T)[::-1]
        assert logits[0] - logits[1] < 2e-3, row


def test_device_mode_resume_and_shards_are_byte_identical(
    tiny_model: LoadedModel, shapes: DatasetLayout, tmp_path: Path
) -> None:
    kw = {"split": "train", "batch_size": 4, "num_workers": 0, "preprocess": "device"}
    whole = embed_dataset(tiny_model, shapes, out_dir=tmp_path / "w", **kw)
    calls: list[float] = []

    def die(fraction: float, stage: str, **units: object) -> None:
        if stage == "embedding":
            calls.append(fraction)
            if len(calls) == 3:
                raise InterruptError

    with pytest.raises(InterruptError):
        embed_dataset(tiny_model, shapes, out_dir=tmp_path / "r", progress=die,
                      checkpoint_every_s=0.0, **kw)  # fmt: skip
    embed_dataset(tiny_model, shapes, out_dir=tmp_path / "r", **kw)
    _same_bytes(whole.out_dir, tmp_path / "r")
    dirs = []
    for i, shard in enumerate(plan_shards(len(shapes.split("train")), 3, 4)):
        dirs.append(tmp_path / f"s{i}")
        embed_dataset(tiny_model, shapes, out_dir=dirs[-1], shard=shard, **kw)
    merged = merge_shards(dirs, tmp_path / "m")
    _same_bytes(whole.out_dir, merged.out_dir)


def test_cli_embed_preprocess_flag(
    shapes_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from iimm_cli import main

    from .conftest import TINY_JSON

    out = tmp_path / "run"
    argv = ["embed", "--model", str(TINY_JSON), "--dataset", str(shapes_dir), "--out", str(out),
            "--batch-size", "8", "--workers", "0", "--quiet", "--preprocess", "device"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 12
    assert json.loads((out / "meta.json").read_text())["preprocess"] == "device"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_device_preprocessing_agrees_with_cpu(
    tiny_model: LoadedModel, mixed_task: DatasetLayout, tmp_path: Path
) -> None:
    """On the GPU (bf16, pinned uint8 batches, mixed sizes): same threshold as test_cuda."""
    from workers.ml.models import load_model

    from .conftest import TINY_JSON

    gpu = load_model(str(TINY_JSON), device="cuda", seed=0)
    kw = {"split": "train", "batch_size": 8, "resume": False}
    cpu = embed_dataset(tiny_model, mixed_task, out_dir=tmp_path / "c", num_workers=0, **kw)
    dev = embed_dataset(gpu, mixed_task, out_dir=tmp_path / "g", num_workers=2, **kw)
    assert dev.meta["preprocess"] == "device"  # the default on CUDA
    a, b = cpu.images().astype(np.float32), dev.images().astype(np.float32)
    cosine = (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.98, cosine.min()
    step = from_transform(EVAL_224)
    assert step is not None
    images = [NATIVE(_smooth_image(w, h, w)) for w, h in ((64, 64), (50, 90), (64, 64))]
    on_gpu = step([im.cuda() for im in images]).cpu()
    assert (on_gpu - step(images)).abs().max() <= 1.0 / 255 / min(step.std) + 1e-4
