"""Datasets: uploaded archives and manifests, or references to data the workers can read."""
