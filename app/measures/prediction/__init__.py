"""Predictors: from a zero-shot measure (IIMM by default) to the gain over zero-shot error G
and the out-of-domain change after fine-tuning, with prediction intervals; measure
comparison and model ranking. Pure numpy/scipy, no I/O.
"""

from .compare import MeasureComparison, compare_measures
from .linear import LinearFit, fit_linear, loo_residuals
from .piecewise import PiecewiseFit, fit_auto, fit_from_dict, fit_piecewise
from .predict import (
    ImpliedAccuracy,
    Prediction,
    implied_accuracy,
    implied_accuracy_interval,
    predict,
)
from .ranking import Candidate, RankedCandidate, rank_candidates

__all__ = [
    "Candidate",
    "ImpliedAccuracy",
    "LinearFit",
    "MeasureComparison",
    "PiecewiseFit",
    "Prediction",
    "RankedCandidate",
    "compare_measures",
    "fit_auto",
    "fit_from_dict",
    "fit_linear",
    "fit_piecewise",
    "implied_accuracy",
    "implied_accuracy_interval",
    "loo_residuals",
    "predict",
    "rank_candidates",
]
