"""The knobs of a dissection; together with model and data they identify a run for resuming."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from unitscope.errors import UsageError
from unitscope.models.precision import AMP_MODES

UPSAMPLE_MODES: tuple[str, ...] = ("rf", "bilinear")
BASELINES: tuple[str, ...] = ("none", "random")
CONTROLS: tuple[str, ...] = ("none", "recolored")


@dataclass(frozen=True)
class DissectSettings:
    """Network Dissection's rules (quantile 0.005, IoU 0.04) and how the work is batched."""

    quantile: float = 0.005
    topk: int = 20
    iou_threshold: float = 0.04
    upsample: str = "rf"
    batch_size: int = 32
    skip_bad: bool = False
    workers: int | str = "auto"  # loader processes, or "auto" (dissection/loader.py: plan_loading)
    checkpoint_seconds: float = 20.0
    fdr: float = 0.05  # detectors must also be significant at this false discovery rate
    bootstrap: int = 200  # resamples of the probe images for label stability (0: none)
    baseline: str = "none"  # "random": also dissect the architecture with re-initialised weights
    baseline_seed: int = 0
    amp: str = "off"  # "bf16"/"fp16": autocast forward passes (models/precision.py)
    control: str = "none"  # "recolored": re-measure object/part detectors on the recoloured twin (colour_control.py)

    def validate(self) -> None:
        if not 0 < self.quantile < 1:
            raise UsageError(f"--quantile must be in (0, 1), got {self.quantile}")
        if self.topk <= 0:
            raise UsageError(f"--topk must be positive, got {self.topk}")
        if not 0 <= self.iou_threshold <= 1:
            raise UsageError(f"--iou must be in [0, 1], got {self.iou_threshold}")
        if self.upsample not in UPSAMPLE_MODES:
            raise UsageError(f"--upsample must be one of {', '.join(UPSAMPLE_MODES)}, got {self.upsample}")
        if not 0 < self.fdr < 1:
            raise UsageError(f"--fdr must be in (0, 1), got {self.fdr}")
        if self.bootstrap < 0:
            raise UsageError(f"--bootstrap must be 0 or more, got {self.bootstrap}")
        if self.baseline not in BASELINES:
            raise UsageError(f"--baseline must be one of {', '.join(BASELINES)}, got {self.baseline}")
        if self.control not in CONTROLS:
            raise UsageError(f"--control must be one of {', '.join(CONTROLS)}, got {self.control}")
        if self.batch_size <= 0:
            raise UsageError(f"--batch-size must be positive, got {self.batch_size}")
        if self.amp not in AMP_MODES:
            raise UsageError(f"--amp must be one of {', '.join(AMP_MODES)}, got {self.amp}")
        if self.workers != "auto" and (not isinstance(self.workers, int) or isinstance(self.workers, bool)
                                       or self.workers < 0):
            raise UsageError(f"--workers must be auto or a number of processes (0 or more), got {self.workers!r}")

    def identity(self) -> dict[str, bool | int | float | str]:
        """The settings that change results (batching and checkpoint cadence do not)."""
        data: dict[str, bool | int | float | str] = asdict(self)
        for key in ("batch_size", "workers", "checkpoint_seconds"):
            data.pop(key)
        if data["amp"] == "off":  # full precision: the identity (and summary.json) of runs before --amp
            data.pop("amp")
        if data["control"] == "none":  # likewise the identity of runs before --control
            data.pop("control")
        return data
