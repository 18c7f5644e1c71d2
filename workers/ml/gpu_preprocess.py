"""Batch-wise preprocessing on the model's device: the model's last arithmetic steps for
``"cpu"`` preprocessing, and resize, centre crop and normalisation for ``"device"``.

``"cpu"``: open_clip's eval transform ends with ToTensor (uint8 -> float / 255) and
Normalize. Workers stop before them (`split_for_device`), sending 4x fewer bytes (uint8)
between processes and skipping per-image float work; `DeviceNormalize` applies the same two
operations, in the same order, to the whole batch: the result is bit-identical.

``"device"``: the DataLoader workers only decode images to uint8 CHW tensors at their
native resolution (`workers.ml.data.tensor_decode.NATIVE`); `DevicePreprocess` reproduces
the model's open_clip eval transform (``Resize(s, bicubic) -> CenterCrop -> ToTensor ->
Normalize``) on a batch of such tensors in one batched op on the GPU (or the CPU: the same
functions run on any device, which is how the tests check them).

Geometry is torchvision's own: the short side goes to ``s`` and the long side to
``int(s * long / short)`` (truncated), the crop's offset is ``round((h - ch) / 2)``. The
filter is that of ``interpolate(mode="bicubic", antialias=True)``, PyTorch's port of Pillow's
separable filter (a = -0.5, support widened when shrinking); it differs from Pillow only by
rounding: like Pillow we resize width then height, each pass clamped and rounded to 0..255
(Pillow stores the intermediate image as uint8), so pixels agree to a level or two.

A 1-D resize is linear, ``y = x @ W`` with W (in x out) fixed by the two sizes. Enlarging
(the paper's small-image datasets: 32-96 px to 224) runs as that matrix product, the crop
folded into W's columns: one GEMM per pass instead of PyTorch's antialiased resampling
kernel, and W is exact (the kernel applied to the identity basis in float64, so it is
PyTorch's filter; the float32 kernel itself is off by up to 1.5e-3 of a level). Shrinking
keeps ``interpolate``: W is dense, the kernel touches only the filter's support. On CUDA the
height pass writes channels-last memory, the layout the model's convolutions read, and the
normalisation is one fused multiply-add, so a batch crosses memory about four times.
Whether the matrix form beats the kernel on a GPU is for ``benchmarks/gpu_check.sh`` to say
(it times both); ``IIMM_DEVICE_RESIZE=interpolate`` selects the kernel.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional as F  # noqa: N812 (the universal alias)
from torchvision import transforms as tvt

from app.config import get_settings

MODES = ("auto", "cpu", "device")
_INTERPOLATION = {
    tvt.InterpolationMode.BICUBIC: "bicubic",
    tvt.InterpolationMode.BILINEAR: "bilinear",
}


@dataclass(frozen=True)
class DevicePreprocess:
    """Batched ``resize -> centre crop -> normalise`` of uint8 images (N x 3 x H x W).

    `resize` is an int (short side, aspect kept) or (h, w) (squash); `crop` is (h, w) or None.
    """

    resize: int | tuple[int, int] | None
    crop: tuple[int, int] | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    mode: str = "bicubic"

    def __call__(
        self, x: torch.Tensor | Sequence[torch.Tensor], *, channels_last: bool | None = None
    ) -> torch.Tensor:
        """Preprocess a uint8 batch, or a list of uint8 CHW images of mixed sizes.

        `channels_last` (default: on CUDA) asks for the output in channels-last memory.
        """
        if channels_last is None:
            channels_last = _device_of(x).type == "cuda"
        if isinstance(x, torch.Tensor):
            return self.normalise(self.geometry(x, channels_last=channels_last))
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(x):
            groups.setdefault(tuple(image.shape), []).append(i)
        parts = {
            k: self.geometry(torch.stack([x[i] for i in idx]), channels_last=channels_last)
            for k, idx in groups.items()
        }
        first = next(iter(parts.values()))
        layout = torch.channels_last if channels_last else torch.contiguous_format
        out = torch.empty((len(x), *first.shape[1:]), dtype=first.dtype, device=first.device,
                          memory_format=layout)  # fmt: skip
        for key, idx in groups.items():
            out[torch.tensor(idx, device=first.device)] = parts[key]
        return self.normalise(out)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) after the resize step, exactly as torchvision computes it."""
        if self.resize is None:
            return height, width
        if not isinstance(self.resize, int):
            return self.resize
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.resize, int(self.resize * long / short)
        return (new_long, new_short) if width <= height else (new_short, new_long)

    def geometry(self, x: torch.Tensor, *, channels_last: bool = False) -> torch.Tensor:
        """uint8 N x C x H x W -> float32 resized and cropped, values rounded in 0..255."""
        n, c, height, width = x.shape
        new_h, new_w = self.output_size(height, width)
        crop_h, crop_w = self.crop or (new_h, new_w)
        exact = use_matrices(x.device)
        y = x.float()
        # Pillow's order: horizontal pass, rounded and clipped to uint8, then vertical pass.
        with torch.autocast(x.device.type, enabled=False):
            if new_w > width and exact:  # crop folded into the matrix
                y = _rounded(y @ resize_matrix(width, new_w, crop_w, self.mode, y.device))
            elif new_w != width:
                y = _rounded(self._interpolate(y, (height, new_w)))
            if new_h > height and exact:
                m = resize_matrix(height, new_h, crop_h, self.mode, y.device).T
                if channels_last:  # rows of (W x C) pixels: the product is N x H x W x C
                    w_now = y.shape[-1]
                    rows = y.permute(0, 2, 3, 1).reshape(n, height, w_now * c)
                    y = torch.bmm(m.expand(n, -1, -1), rows)  # contiguous: N x H x (W C)
                    y = y.view(n, crop_h, w_now, c).permute(0, 3, 1, 2)
                else:
                    y = torch.matmul(m, y)
                y = _rounded(y)
            elif new_h != height:
                y = _rounded(self._interpolate(y, (new_h, y.shape[-1])))
        return y if self.crop is None else center_crop(y, self.crop)

    def _interpolate(self, y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(y, size=size, mode=self.mode, antialias=True, align_corners=False)

    def normalise(self, y: torch.Tensor) -> torch.Tensor:
        """(y / 255 - mean) / std as one fused y * a + b on the float batch, in place."""
        scale, shift = _affine(self.mean, self.std, y.device)
        return torch.addcmul(shift, y, scale, out=y)


@dataclass(frozen=True)
class DeviceNormalize:
    """x -> (x / 255 - mean) / std on a uint8 batch (N x C x H x W), where it lies."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1, 1, 1)
        mean = torch.tensor(self.mean, device=x.device).view(shape)
        std = torch.tensor(self.std, device=x.device).view(shape)
        return x.float().div_(255).sub_(mean).div_(std)


def split_for_device(preprocess: Callable) -> tuple[Callable, DeviceNormalize | None]:
    """(worker transform producing uint8 CHW tensors, device step) for a Compose ending in
    ToTensor + Normalize; (preprocess, None) for any other transform."""
    steps = getattr(preprocess, "transforms", None)
    if not steps or len(steps) < 2:
        return preprocess, None
    to_tensor, normalize = steps[-2], steps[-1]
    if not (isinstance(to_tensor, tvt.ToTensor) and isinstance(normalize, tvt.Normalize)):
        return preprocess, None
    mean = tuple(float(v) for v in normalize.mean)
    std = tuple(float(v) for v in normalize.std)
    return tvt.Compose([*steps[:-2], tvt.PILToTensor()]), DeviceNormalize(mean, std)


def _rounded(y: torch.Tensor) -> torch.Tensor:
    """A resampling pass's result stored as Pillow stores it: clipped to 0..255, rounded."""
    return y.clamp_(0, 255).round_()


def _device_of(x: torch.Tensor | Sequence[torch.Tensor]) -> torch.device:
    return x.device if isinstance(x, torch.Tensor) else x[0].device


def use_matrices(device: torch.device) -> bool:
    """Whether enlarging runs as matrix products on `device`: unless ``IIMM_DEVICE_RESIZE=
    interpolate`` asks for PyTorch's resampling kernel (an escape hatch, and the benchmark's
    reference), and only where float32 products are IEEE float32 (not TF32, whose 10-bit
    mantissa would move a pixel by a tenth of a level and flip roundings)."""
    if get_settings().device_resize == "interpolate":
        return False
    if device.type != "cuda":
        return True
    precision = getattr(torch.backends.cuda.matmul, "fp32_precision", None)  # torch >= 2.9
    if precision is None:
        return not torch.backends.cuda.matmul.allow_tf32
    return precision != "tf32"


@functools.lru_cache(maxsize=64)
def _resize_weights(n_in: int, n_out: int, mode: str) -> torch.Tensor:
    """W (n_in x n_out, float64): a 1-D resize from n_in to n_out pixels is ``x @ W``.

    Column o holds output pixel o's weights: the antialiased kernel of
    ``F.interpolate(mode, antialias=True)`` applied to the identity basis (each input pixel
    alone), in float64 (rows of one height pass through that kernel unchanged).
    """
    basis = torch.eye(n_in, dtype=torch.float64).view(n_in, 1, 1, n_in)
    out = F.interpolate(basis, size=(1, n_out), mode=mode, antialias=True, align_corners=False)
    return out.view(n_in, n_out)


@functools.lru_cache(maxsize=64)
def resize_matrix(
    n_in: int, n_out: int, crop: int, mode: str, device: torch.device
) -> torch.Tensor:
    """The float32 (n_in x crop) matrix of a 1-D resize to n_out followed by torchvision's
    centre crop (or zero padding) to `crop` pixels, on `device` (made once)."""
    weights = _resize_weights(n_in, n_out, mode)
    if crop > n_out:
        pad = crop - n_out
        weights = F.pad(weights, [pad // 2, (pad + 1) // 2])
    else:
        left = round((n_out - crop) / 2.0)
        weights = weights[:, left : left + crop]
    return weights.to(device=device, dtype=torch.float32).contiguous()


@functools.lru_cache(maxsize=32)
def _affine(
    mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(1/(255 std), -mean/std) as 1 x C x 1 x 1 float32 tensors on `device`, made once: a
    fresh host-to-device copy per batch would synchronise the stream and stall the
    overlapped forward passes. Computed in float64, so ``y * a + b`` is within an ulp or two
    of ``(y / 255 - mean) / std``."""
    scale = [1.0 / (255.0 * s) for s in std]
    shift = [-m / s for m, s in zip(mean, std, strict=True)]
    return tuple(  # type: ignore[return-value]
        torch.tensor(v, dtype=torch.float64).view(1, -1, 1, 1).to(device, torch.float32)
        for v in (scale, shift)
    )


def center_crop(y: torch.Tensor, crop: tuple[int, int]) -> torch.Tensor:
    """torchvision's CenterCrop on a batch: zero padding when smaller, round((h - ch) / 2)."""
    ch, cw = crop
    h, w = y.shape[-2:]
    if h < ch or w < cw:
        pad_w, pad_h = max(cw - w, 0), max(ch - h, 0)
        y = F.pad(y, [pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2], value=0.0)
        h, w = y.shape[-2:]
    top, left = round((h - ch) / 2.0), round((w - cw) / 2.0)
    return y[..., top : top + ch, left : left + cw]


def _size(value: int | Sequence[int]) -> int | tuple[int, int]:
    if isinstance(value, int):
        return value
    vals = tuple(int(v) for v in value)
    return vals[0] if len(vals) == 1 else (vals[0], vals[1])


def from_transform(preprocess: Callable) -> DevicePreprocess | None:
    """The DevicePreprocess equal to an open_clip eval Compose, or None if it has steps we
    do not reproduce (ResizeKeepRatio, max_size, other interpolations, custom transforms)."""
    steps = list(getattr(preprocess, "transforms", None) or [])
    resize: int | tuple[int, int] | None = None
    crop: tuple[int, int] | None = None
    mode = "bicubic"
    if steps and isinstance(steps[0], tvt.Resize):
        r = steps.pop(0)
        # (Pillow always antialiases, so r.antialias, which only affects tensors, is moot)
        if r.max_size is not None or r.interpolation not in _INTERPOLATION:
            return None
        resize, mode = _size(r.size), _INTERPOLATION[r.interpolation]
    if steps and isinstance(steps[0], tvt.CenterCrop):
        c = _size(steps.pop(0).size)
        crop = (c, c) if isinstance(c, int) else c
    if steps and type(steps[0]).__name__ == "MaybeConvertMode":
        steps.pop(0)  # converts PIL images to RGB: the decoder already produces RGB
    if len(steps) != 2 or not isinstance(steps[0], tvt.ToTensor):
        return None
    if not isinstance(steps[1], tvt.Normalize):
        return None
    mean = tuple(float(v) for v in steps[1].mean)
    std = tuple(float(v) for v in steps[1].std)
    return DevicePreprocess(resize, crop, mean, std, mode)


def resolve_preprocess(mode: str, preprocess: Callable, device: torch.device) -> str:
    """Resolve a requested `mode` to "cpu" or "device".

    "auto" is "device" on CUDA when the model's transform is reproducible, "cpu" otherwise:
    on a CPU the forward pass of real models dominates (ViT-B-32: decoding is about 1% of
    the work) and a batched resize in the main process would take cores from it, while
    Pillow in low-priority workers uses the cycles the forward leaves.
    """
    if mode not in MODES:
        raise ValueError(f"preprocess must be one of {MODES}, not {mode!r}")
    supported = from_transform(preprocess) is not None
    if mode == "device" and not supported:
        raise ValueError(
            "preprocess='device' cannot reproduce this model's preprocessing "
            f"({preprocess!r}); use preprocess='cpu'"
        )
    if mode == "auto":
        return "device" if device.type == "cuda" and supported else "cpu"
    return mode
