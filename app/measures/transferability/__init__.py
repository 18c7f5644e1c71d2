"""Transferability baselines the IIMM paper compares against, reimplemented from their papers.

Pure numpy/scipy. Every function takes image features (n x d; float16/32/64 or a memory map,
never modified) and labels (n; arbitrary values, remapped to 0..k-1 except for EMMS, whose
integer labels index the label embeddings) and returns a Python float, higher meaning more
transferable:

- :func:`transrate` (Huang et al., ICML 2022), :func:`sfda` (Shao et al., ECCV 2022),
  :func:`ncti` / :func:`ncti_relative` (Wang et al., ICCV 2023), :func:`emms` (Meng, Shao et
  al., NeurIPS 2023), :func:`logme` (You et al., ICML 2021), :func:`hscore` (Bao et al.,
  ICIP 2019), :func:`gbc` (Pándy et al., CVPR 2022).
"""

from .emms import emms
from .gbc import gbc
from .hscore import hscore
from .logme import logme
from .ncti import NCTITerms, ncti, ncti_relative, ncti_terms
from .sfda import sfda
from .transrate import transrate

__all__ = [
    "NCTITerms",
    "emms",
    "gbc",
    "hscore",
    "logme",
    "ncti",
    "ncti_relative",
    "ncti_terms",
    "sfda",
    "transrate",
]
