"""Device-side preprocessing: resize, centre crop and normalise whole batches where they lie.

With ``preprocess="device"`` the DataLoader workers only decode images to uint8 CHW tensors
at their native resolution (`workers.ml.data.native`); this module reproduces the model's
open_clip eval transform (``Resize(s, bicubic) -> CenterCrop -> ToTensor -> Normalize``) on a
batch of such tensors in one batched op on the GPU (or the CPU: the same functions run on
any device, which is how the tests check them).

Geometry is torchvision's own: the short side goes to ``s`` and the long side to
``int(s * long / short)`` (truncated), the crop's offset is ``round((h - ch) / 2)``. The
resampling is ``interpolate(mode="bicubic", antialias=True)``, PyTorch's port of Pillow's
separable filter (a = -0.5, support widened when shrinking); it differs from Pillow only by
rounding: like Pillow we resize width then height, each pass clamped and rounded to 0..255
(Pillow stores the intermediate image as uint8), so pixels agree to a level or two.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional as F  # noqa: N812 (the universal alias)
from torchvision import transforms as tvt

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

    def __call__(self, x: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """Preprocess a uint8 batch, or a list of uint8 CHW images of mixed sizes."""
        if isinstance(x, torch.Tensor):
            return self.normalise(self.geometry(x))
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(x):
            groups.setdefault(tuple(image.shape), []).append(i)
        parts = {k: self.geometry(torch.stack([x[i] for i in idx])) for k, idx in groups.items()}
        first = next(iter(parts.values()))
        out = torch.empty((len(x), *first.shape[1:]), dtype=first.dtype, device=first.device)
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

    def geometry(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 N x C x H x W -> float32 resized and cropped, values rounded in 0..255."""
        height, width = x.shape[-2:]
        new_h, new_w = self.output_size(height, width)
        y = x.float()
        # Pillow's order: horizontal pass, rounded and clipped to uint8, then vertical pass.
        for size in ((height, new_w), (new_h, new_w)):
            if size != tuple(y.shape[-2:]):
                y = F.interpolate(y, size=size, mode=self.mode, antialias=True, align_corners=False)
                y = y.clamp_(0, 255).round_()
        return y if self.crop is None else center_crop(y, self.crop)

    def normalise(self, y: torch.Tensor) -> torch.Tensor:
        """(y / 255 - mean) / std, in place on the float batch."""
        return (
            y.div_(255)
            .sub_(_channel_values(self.mean, y.device))
            .div_(_channel_values(self.std, y.device))
        )


@functools.lru_cache(maxsize=32)
def _channel_values(values: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """A 1 x C x 1 x 1 float32 tensor on `device`, made once: a fresh host-to-device copy
    per batch would synchronise the stream and stall the overlapped forward passes."""
    return torch.tensor(values, dtype=torch.float32, device=device).view(1, -1, 1, 1)


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
