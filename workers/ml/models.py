"""open_clip model loading: presets, tags, checkpoints, hf-hub ids, architecture JSON files.

`load_model` builds a model once per process and returns the cached instance afterwards;
the cache is bounded (`configure_model_cache`: count and bytes of parameters and buffers,
least recently used out first, CUDA memory returned to the device on eviction).
Weights are never fetched silently on a machine without network: a missing checkpoint is
a `WeightsNotFoundError` naming the file or cache directory to provide.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from app.imagedata.errors import ModelSpecError
from app.imagedata.model_specs import PRESETS, ModelSpec, resolve_spec
from workers.ml.device import resolve_device, resolve_precision

__all__ = [
    "PRESETS",
    "LoadedModel",
    "WeightsNotFoundError",
    "clear_model_cache",
    "configure_model_cache",
    "load_model",
    "model_fingerprint",
    "resolve_spec",
]

log = logging.getLogger(__name__)
_CACHE: OrderedDict[tuple[Any, ...], LoadedModel] = OrderedDict()  # least recently used first
_LOCK = threading.Lock()
_LIMITS = {"models": 4, "bytes": 8 << 30}


class WeightsNotFoundError(ModelSpecError):
    """Pretrained weights are not on this machine and cannot be downloaded."""


@dataclass
class LoadedModel:
    """A ready model: eval mode, on its device, with its preprocessing and tokenizer."""

    spec: ModelSpec
    model: torch.nn.Module
    preprocess: Any
    tokenizer: Any
    fingerprint: str
    device: torch.device
    autocast_dtype: torch.dtype | None
    embed_dim: int
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.canonical


def load_model(
    spec: str | ModelSpec,
    *,
    device: str | torch.device = "auto",
    precision: str = "auto",
    cache_dir: str | Path | None = None,
    seed: int = 0,
) -> LoadedModel:
    """Load (once per process) the model named by `spec`; see `app.imagedata.model_specs`.

    `precision` is the autocast dtype of the forward pass ("auto" = bf16 on CUDA, fp32 on CPU);
    weights stay fp32. `seed` initialises ``@random`` models. `cache_dir` is where open_clip /
    Hugging Face look for downloaded weights.
    """
    parsed = spec if isinstance(spec, ModelSpec) else resolve_spec(spec)
    dev = resolve_device(device)
    key = (parsed.canonical, str(dev), precision, str(cache_dir or ""), seed)
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        _evict(keep=_LIMITS["models"] - 1, max_bytes=None)  # room before building
        loaded = _CACHE[key] = _build(parsed, dev, precision, cache_dir, seed)
        _evict(keep=_LIMITS["models"], max_bytes=_LIMITS["bytes"])
        return loaded


def configure_model_cache(*, max_models: int, max_bytes: int) -> None:
    """Bound the cache: at most `max_models` models and `max_bytes` bytes of parameters and
    buffers (the model just loaded stays even when alone over the bytes); evicts now."""
    with _LOCK:
        _LIMITS.update(models=max(1, int(max_models)), bytes=max(0, int(max_bytes)))
        _evict(keep=_LIMITS["models"], max_bytes=_LIMITS["bytes"])


def cached_models() -> list[LoadedModel]:
    """The cached models, least recently used first."""
    with _LOCK:
        return list(_CACHE.values())


def model_nbytes(model: torch.nn.Module) -> int:
    """Bytes of a module's parameters and buffers (on whatever device they are)."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def _evict(*, keep: int, max_bytes: int | None) -> None:
    """Drop least recently used models (caller holds `_LOCK`) until at most `keep` remain
    and, when `max_bytes` is given, their bytes fit (the newest always stays)."""
    dropped: list[LoadedModel] = []
    while len(_CACHE) > max(keep, 0):
        dropped.append(_CACHE.popitem(last=False)[1])
    if max_bytes is not None:
        sizes = {k: model_nbytes(m.model) for k, m in _CACHE.items()}
        while len(_CACHE) > 1 and sum(sizes.values()) > max_bytes:
            key, model = _CACHE.popitem(last=False)
            sizes.pop(key)
            dropped.append(model)
    if dropped:
        log.info("model cache: evicted %s", ", ".join(m.name for m in dropped))
        _release([m.device for m in dropped])


def _release(devices: list[torch.device]) -> None:
    """Return freed CUDA memory to the device once the evicted models are unreferenced."""
    if any(d.type == "cuda" for d in devices) and torch.cuda.is_available():
        gc.collect()
        torch.cuda.empty_cache()


def clear_model_cache() -> None:
    """Forget every loaded model (tests; freeing GPU memory)."""
    with _LOCK:
        devices = [m.device for m in _CACHE.values()]
        _CACHE.clear()
        _release(devices)


def _build(
    spec: ModelSpec, dev: torch.device, precision: str, cache_dir: str | Path | None, seed: int
) -> LoadedModel:
    import open_clip

    name = _register_config(spec) if spec.config_path else spec.arch
    cache = str(cache_dir) if cache_dir else None
    offline = False
    if spec.kind == "hf-hub":
        offline = _hub_access(spec, cache, _repo_cached(spec.arch, cache))
    pretrained = _check_weights(spec, cache) if spec.kind in ("tag", "checkpoint") else None
    with torch.random.fork_rng(devices=[]), _hub_offline(offline):
        torch.manual_seed(seed)
        model, _, preprocess = _create(open_clip, name, spec, pretrained, cache)
    model.eval()
    config = _arch_config(open_clip, name, spec)
    fingerprint = model_fingerprint(model, config=config, preprocess=preprocess, spec=spec)
    with _hub_offline(offline):
        tokenizer = _tokenizer(open_clip, name, spec, model, cache)
    model = model.to(dev)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    embed_dim = int(config.get("embed_dim", 0) or _probe_dim(model, tokenizer, dev))
    return LoadedModel(
        spec,
        model,
        preprocess,
        tokenizer,
        fingerprint,
        dev,
        resolve_precision(precision, dev),
        embed_dim,
        config,
    )


def _create(
    open_clip: Any, name: str, spec: ModelSpec, pretrained: str | None, cache: str | None
) -> Any:
    try:
        return open_clip.create_model_and_transforms(name, pretrained=pretrained, cache_dir=cache)
    except Exception as exc:  # torch.load raises pickle, zip, key and size errors alike
        if spec.kind in ("hf-hub", "local-dir"):
            raise WeightsNotFoundError(_missing_message(spec, cache, exc)) from None
        if spec.kind == "checkpoint":
            reason = str(exc).splitlines()[0][:300]
            raise ModelSpecError(
                f"cannot load checkpoint {spec.pretrained} into {name}: {reason}"
            ) from None
        raise


def _register_config(spec: ModelSpec) -> str:
    """Register an architecture JSON file with open_clip under its file stem."""
    import open_clip

    path = Path(str(spec.config_path))
    try:
        cfg = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelSpecError(f"cannot read architecture config {path}: {exc}") from None
    if not all(k in cfg for k in ("embed_dim", "vision_cfg", "text_cfg")):
        raise ModelSpecError(f"{path} needs embed_dim, vision_cfg and text_cfg (open_clip format)")
    existing = open_clip.get_model_config(path.stem)
    if existing is not None and existing != cfg:
        raise ModelSpecError(
            f"architecture name {path.stem!r} (from {path}) is already registered with a different "
            "config; rename the JSON file"
        )
    if existing is None:
        open_clip.add_model_config(path)
    return path.stem


def _check_weights(spec: ModelSpec, cache: str | None) -> str | None:
    """For a tag, make sure its weights are on disk (cache or download) before building."""
    if spec.kind == "checkpoint":
        return spec.pretrained
    import open_clip

    cfg = open_clip.get_pretrained_cfg(spec.arch, str(spec.pretrained))
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(spec.arch)
        raise ModelSpecError(
            f"unknown pretrained tag {spec.pretrained!r} for {spec.arch}; known: {tags}"
        )
    offline = _hub_access(spec, cache, _in_hf_cache(cfg, cache), cfg)
    try:
        with _hub_offline(offline):
            open_clip.download_pretrained(cfg, cache_dir=cache)
    except Exception as exc:  # network, hub and file errors all mean "not available here"
        raise WeightsNotFoundError(_missing_message(spec, cache, type(exc).__name__, cfg)) from None
    return spec.pretrained


# One request with this timeout tells whether the hub can be reached: without it, a machine
# without network spends over a minute in huggingface_hub's retries before failing.
HUB_PROBE_TIMEOUT_S = 3.0


def _hub_access(spec: ModelSpec, cache: str | None, cached: bool, cfg: dict | None = None) -> bool:
    """Whether to load from the cache alone (True: offline, or the hub is unreachable and the
    files are cached); a `WeightsNotFoundError` at once when they are neither cached nor
    reachable. One probe of the hub (or the weights' URL host), no retries."""
    url = (cfg or {}).get("url") if cfg and not cfg.get("hf_hub") else None
    if _offline():
        why = "HF_HUB_OFFLINE is set"
    elif (why := _unreachable(url or _hub_endpoint())) is None:
        return False
    if cached:
        log.info("loading %s from the cache: %s", spec.spec, why)
        return True
    raise WeightsNotFoundError(_missing_message(spec, cache, why, cfg))


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _unreachable(url: str) -> str | None:
    """Why `url`'s server cannot be reached now (any HTTP answer counts as reached), or None."""
    import httpx

    try:
        httpx.head(url, timeout=HUB_PROBE_TIMEOUT_S)
    except httpx.HTTPError as exc:
        return f"{url} is unreachable: {type(exc).__name__}: {exc}"[:300]
    return None


@contextlib.contextmanager
def _hub_offline(offline: bool) -> Iterator[None]:
    """huggingface_hub in offline mode (cached files only, no requests) inside the block.

    Callers hold `_LOCK` (load_model builds under it), so no other load sees the switch.
    """
    if not offline:
        yield
        return
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def _repo_cached(arch: str, cache: str | None) -> bool:
    """Whether an ``hf-hub:org/repo`` model's config is in the Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    repo = arch.removeprefix("hf-hub:")
    return isinstance(try_to_load_from_cache(repo, "open_clip_config.json", cache_dir=cache), str)


def _in_hf_cache(cfg: dict[str, Any], cache: str | None) -> bool:
    """Whether a tag's Hugging Face weights are already cached (no network access)."""
    from huggingface_hub import try_to_load_from_cache

    if not cfg.get("hf_hub"):
        return bool(cfg.get("url")) and _url_cached(cfg["url"], cache)
    repo, filename = os.path.split(cfg["hf_hub"])
    names = [filename] if filename else []
    names += ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    return any(isinstance(try_to_load_from_cache(repo, n, cache_dir=cache), str) for n in names)


def _url_cached(url: str, cache: str | None) -> bool:
    root = Path(cache) if cache else Path.home() / ".cache" / "clip"
    return (root / os.path.basename(url)).is_file()


def _missing_message(
    spec: ModelSpec, cache: str | None, why: object, cfg: dict | None = None
) -> str:
    from huggingface_hub import constants

    where = cache or constants.HF_HUB_CACHE
    reason = str(why).splitlines()[0][:300] if str(why) else type(why).__name__
    if spec.kind == "local-dir":
        return f"cannot load {spec.spec}: {reason}"
    repo = os.path.split((cfg or {}).get("hf_hub", ""))[0] or spec.arch.removeprefix("hf-hub:")
    other = (
        "local-dir:/path/to/a/copy/of/the/repo"
        if spec.kind == "hf-hub"
        else f"a local checkpoint file: {spec.arch}@/path/to/weights.pt"
    )
    return (
        f"weights for {spec.spec} ({spec.canonical}) are not on this machine and cannot be "
        f"downloaded ({reason}). Put the Hugging Face repo {repo} in the cache directory "
        f"{where} (on a connected machine: huggingface-cli download {repo} --cache-dir "
        f"{where}), or use {other}"
    )


def _arch_config(open_clip: Any, name: str, spec: ModelSpec) -> dict[str, Any]:
    cfg = open_clip.get_model_config(name) if spec.kind not in ("hf-hub", "local-dir") else None
    return dict(cfg or {})


def _tokenizer(open_clip: Any, name: str, spec: ModelSpec, model: Any, cache: str | None) -> Any:
    ctx = getattr(model, "context_length", None)
    try:
        return open_clip.get_tokenizer(name, context_length=ctx, cache_dir=cache)
    except (OSError, ValueError, RuntimeError) as exc:
        raise WeightsNotFoundError(_missing_message(spec, cache, exc)) from None


def _probe_dim(model: Any, tokenizer: Any, dev: torch.device) -> int:
    with torch.inference_mode():
        return int(model.encode_text(tokenizer(["x"]).to(dev)).shape[-1])


def model_fingerprint(
    model: torch.nn.Module, *, config: dict, preprocess: Any, spec: ModelSpec
) -> str:
    """SHA-256 of the architecture config, the preprocessing and every weight's bytes.

    Hashing the loaded state dict (not the file) makes the fingerprint the same for the same
    weights however they were obtained, and different for any other weights or random seed.
    """
    h = hashlib.sha256()
    head = {
        "config": config,
        "preprocess": repr(preprocess),
        "schema": spec.kind in ("hf-hub", "local-dir") and spec.arch,
    }
    h.update(json.dumps(head, sort_keys=True, default=str).encode())
    for key, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"\0{key}:{t.dtype}:{tuple(t.shape)}\0".encode())
        h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()
