"""Comparing two dissection runs: counts per layer, frequency and discriminativeness of concepts."""
