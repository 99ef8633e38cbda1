"""Class activation maps (CAM, Grad-CAM): where a class score comes from, scored against object masks."""
