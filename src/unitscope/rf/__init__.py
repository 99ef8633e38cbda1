"""Empirical receptive fields by occlusion (Zhou et al. §3.2), built on ``unitscope.perturb``."""
