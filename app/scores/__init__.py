"""Stored measures of (model, dataset, split)."""
