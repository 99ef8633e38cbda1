"""Probe sets: the images (and, where known, per-pixel concept labels) that units are shown."""
