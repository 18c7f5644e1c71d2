"""Predictors: fit gain and forgetting on zero-shot measures, predict, assess new tasks."""
