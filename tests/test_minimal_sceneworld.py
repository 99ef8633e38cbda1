"""``unitscope minimal`` on SceneWorld: deterministic for a seed, with the retention table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from unitscope.cli.main import main

MODEL_SOURCE = '''
import torch
from torch import nn
from unitscope.data.sceneworld import SCENE_CLASSES


class GreenForest(nn.Module):
    """'forest' scores the share-weighted green excess; bedroom 0.021 and every other class 0.02."""

    class_names = list(SCENE_CLASSES)

    def forward(self, x):
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        rgb = x * std + mean
        logits = torch.full((len(x), len(SCENE_CLASSES)), 0.02)
        logits[:, 0] = 0.021
        logits[:, SCENE_CLASSES.index("forest")] = torch.relu(rgb[:, 1] - rgb[:, 0] - 0.1).mean(dim=(1, 2))
        return logits


def green_forest():
    return GreenForest()
'''


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_images(tmp_path: Path) -> None:
    model = tmp_path / "green.py"
    model.write_text(MODEL_SOURCE)
    common = ["minimal", "--model", f"{model}:green_forest", "--data", "sceneworld", "--n", "20", "--segments", "12"]
    main([*common, "--seed", "3", "--out", str(tmp_path / "a")])
    main([*common, "--seed", "3", "--out", str(tmp_path / "b"), "--batch-size", "5"])
    main([*common, "--seed", "4", "--out", str(tmp_path / "c")])
    assert files_of(tmp_path / "a") == files_of(tmp_path / "b")
    summary = pd.read_csv(tmp_path / "a" / "summary.csv")
    other = pd.read_csv(tmp_path / "c" / "summary.csv")
    assert summary["class"].tolist() != other["class"].tolist()
    forest = summary[(summary["class"] == "forest") & (summary["status"] == "ok")]
    assert len(forest) > 0 and (forest["pixels_kept"] > 0).any()
    retention = pd.read_csv(tmp_path / "a" / "retention.csv").set_index("class")
    assert retention.loc["forest", "images"] == len(forest)
    kept_on_objects = forest["object_pixels_kept"].sum() / forest["pixels_kept"].sum()
    assert retention.loc["forest", "object_share_kept"] == round(kept_on_objects, 4)
    objects = pd.read_csv(tmp_path / "a" / "retention_objects.csv")
    assert not {"sky", "grass", "ground"} & set(objects["object"])  # background regions are not objects
    assert (objects["images_surviving"] <= objects["images_present"]).all()
    assert "tree" in set(objects[objects["class"] == "forest"]["object"])
    assert (tmp_path / "a" / "retention.md").read_text().count("| forest |") == 1
