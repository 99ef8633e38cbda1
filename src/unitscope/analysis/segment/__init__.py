"""Segmentation by detector units, in the same forward pass as the scene prediction."""
