"""Model specs: the strings that name an open_clip model and its weights (torch-free).

Grammar (the API validates with this module without importing torch):

- a preset: ``clip``, ``siglip``, ``coca``, ``eva02`` (the paper's four models), or
  ``reference``, the small dual encoder trained in this repository and shipped with it
  (``workers/ml/configs/reference-clip.{json,safetensors}``; docs/reference-model.md);
- ``ARCH@TAG``: an open_clip architecture with a pretrained tag (``ViT-B-32@openai``);
- ``ARCH@/path/to/checkpoint.pt``: an architecture with a local checkpoint file;
- ``ARCH@random``: random initialisation (seeded), for tests and benchmarks;
- ``/path/to/arch.json`` (random init) or ``/path/to/arch.json@/path/to/checkpoint.pt``;
- ``hf-hub:org/repo`` or ``local-dir:/path/to/dir`` (open_clip's own schemas).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from app.imagedata.errors import ModelSpecError

PRESETS: dict[str, tuple[str, str]] = {
    "clip": ("ViT-B-32", "openai"),
    "siglip": ("ViT-B-16-SigLIP", "webli"),
    "coca": ("coca_ViT-B-32", "laion2b_s13b_b90k"),
    "eva02": ("EVA02-B-16", "merged2b_s8b_b131k"),
}
RANDOM = "random"
REFERENCE = "reference"
BUNDLED_CONFIGS = Path(__file__).resolve().parents[2] / "workers" / "ml" / "configs"
REFERENCE_ARCH = BUNDLED_CONFIGS / "reference-clip.json"
REFERENCE_WEIGHTS = BUNDLED_CONFIGS / "reference-clip.safetensors"


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec: where the architecture and the weights come from."""

    spec: str
    kind: str  # "tag" | "checkpoint" | "random" | "hf-hub" | "local-dir"
    arch: str  # open_clip architecture name, JSON config path, or schema id
    pretrained: str | None = None  # tag or checkpoint path
    config_path: str | None = None  # architecture JSON file, when given

    @property
    def canonical(self) -> str:
        """The spec with presets expanded: ``ViT-B-32@openai``."""
        if self.kind in ("hf-hub", "local-dir"):
            return self.arch
        return f"{self.config_path or self.arch}@{self.pretrained or RANDOM}"


@cache
def builtin_architectures() -> frozenset[str]:
    """open_clip's architecture names, read from its config files without importing it."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    configs = Path(next(iter(spec.submodule_search_locations))) / "model_configs"
    return frozenset(p.stem for p in configs.glob("*.json"))


def resolve_spec(spec: str) -> ModelSpec:
    """Parse and check a model spec string; ModelSpecError says what is wrong and what works."""
    spec = spec.strip()
    if not spec:
        raise ModelSpecError("empty model spec")
    if spec in PRESETS:
        arch, tag = PRESETS[spec]
        return ModelSpec(spec, "tag", arch, tag)
    if spec == REFERENCE:
        return _reference_spec()
    for schema in ("hf-hub:", "local-dir:"):
        if spec.startswith(schema):
            if len(spec) == len(schema):
                raise ModelSpecError(f"{schema} needs an identifier after it")
            return ModelSpec(spec, schema[:-1], spec)
    arch, _, weights = spec.rpartition("@") if "@" in spec else (spec, "", "")
    if arch.lower().endswith(".json"):
        return _json_spec(spec, arch, weights or RANDOM)
    if arch not in builtin_architectures():
        raise ModelSpecError(
            f"unknown open_clip architecture {arch!r}; use a preset ({', '.join(PRESETS)}), "
            "ARCH@TAG, ARCH@/path/checkpoint.pt, an architecture .json file or hf-hub:org/repo"
        )
    if not weights:
        raise ModelSpecError(
            f"model spec {spec!r} names no weights: write {arch}@TAG, {arch}@/path/checkpoint.pt "
            f"or {arch}@{RANDOM}"
        )
    return _weights_spec(spec, arch, weights, config_path=None)


def _reference_spec() -> ModelSpec:
    if not (REFERENCE_ARCH.is_file() and REFERENCE_WEIGHTS.is_file()):
        raise ModelSpecError(
            f"the reference checkpoint is not installed ({REFERENCE_WEIGHTS} is missing); "
            "rebuild it with `iimm reference build --out DIR` and register "
            "DIR/reference-clip.json with pretrained DIR/reference-clip.safetensors"
        )
    return ModelSpec(
        REFERENCE, "checkpoint", REFERENCE_ARCH.stem, str(REFERENCE_WEIGHTS), str(REFERENCE_ARCH)
    )


def _json_spec(spec: str, config: str, weights: str) -> ModelSpec:
    if not Path(config).is_file():
        raise ModelSpecError(f"architecture config file not found: {config}")
    return _weights_spec(spec, Path(config).stem, weights, config_path=str(Path(config).resolve()))


def _weights_spec(spec: str, arch: str, weights: str, *, config_path: str | None) -> ModelSpec:
    if weights == RANDOM:
        return ModelSpec(spec, "random", arch, None, config_path)
    looks_like_path = "/" in weights or "\\" in weights or Path(weights).suffix != ""
    if looks_like_path:
        if not Path(weights).is_file():
            raise ModelSpecError(f"checkpoint file not found: {weights}")
        return ModelSpec(spec, "checkpoint", arch, str(Path(weights).resolve()), config_path)
    if config_path is not None:
        raise ModelSpecError(f"a pretrained tag ({weights!r}) needs a built-in architecture")
    return ModelSpec(spec, "tag", arch, weights)
