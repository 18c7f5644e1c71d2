"""Transferability baselines the IIMM paper compares against, reimplemented from their papers.

Pure numpy/scipy. Every function takes image features (n x d; float16/32/64 or a memory map,
never modified) and labels (n; arbitrary values, remapped to 0..k-1 except for EMMS, whose
integer labels index the label embeddings) and returns a Python float, higher meaning more
transferable:

- :func:`transrate` (Huang et al., ICML 2022), :func:`sfda` (Shao et al., ECCV 2022),
  :func:`emms` (Meng, Shao et al., NeurIPS 2023), :func:`logme` (You et al., ICML 2021),
  :func:`hscore` (Bao et al., ICIP 2019), :func:`gbc` (Pándy et al., CVPR 2022);
- NCTI (Wang et al., ICCV 2023), which is relative to a set of candidate models:
  :func:`ncti_relative` (or :func:`ncti_from_terms`), from each model's :func:`ncti_terms`.

Every function takes ``variant=``: ``"definition"`` (default; the method's paper, computed
exactly), ``"iimm_reference"`` (what the IIMM paper's code, mit-ll/IIMM
``transferability_metrics.py``, computed) and ``"authors"`` (the method authors' released
code where it differs); each docstring names every difference. LogME has ``"authors"`` and
``"authors_icml"`` but no ``"iimm_reference"`` (the IIMM code has no LogME).
"""

from .emms import emms
from .gbc import gbc
from .hscore import hscore
from .logme import logme
from .ncti import NCTITerms, ncti_from_terms, ncti_relative, ncti_terms
from .sfda import sfda
from .transrate import transrate

__all__ = [
    "NCTITerms",
    "emms",
    "gbc",
    "hscore",
    "logme",
    "ncti_from_terms",
    "ncti_relative",
    "ncti_terms",
    "sfda",
    "transrate",
]
