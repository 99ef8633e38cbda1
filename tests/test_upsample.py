"""Upsampling matrices: bilinear equals torch's resize; rf mode follows receptive-field centres."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unitscope.dissection.upsample import Upsampler


def test_bilinear_mode_equals_torch_interpolate() -> None:
    acts = torch.rand(2, 3, 7, 5)
    up = Upsampler.build("bilinear", (7, 5), (28, 23), (56, 46))
    expected = F.interpolate(acts, size=(28, 23), mode="bilinear", align_corners=False)
    assert torch.allclose(up(acts), expected, atol=1e-5)


def test_rf_mode_places_values_at_field_centres() -> None:
    # A layer of stride 4 whose position i is centred on input pixel 1.5 + 4 i, input 16 px, labels 16 px:
    # label pixel q = 1.5 + 4 i falls between pixels 1 and 2, so pixels 1 and 2 get equal shares of unit 0.
    acts = torch.zeros(1, 1, 4, 4)
    acts[0, 0, 0, 0] = 1.0
    up = Upsampler.build("rf", (4, 4), (16, 16), (16, 16), stride=4, start=1.5)
    out = up(acts)[0, 0]
    assert torch.allclose(out[0, 0], torch.tensor(1.0))  # clamped before the first centre
    assert torch.allclose(out[1, 1], torch.tensor(1.0))
    assert torch.allclose(out[2, 2], torch.tensor(0.875**2))  # 2 is 0.5 px past the centre: weight 1 - 0.5/4
    assert torch.allclose(out[4, 1], torch.tensor(1.0 - (4 - 1.5) / 4))
    assert out[6, 0] == 0  # past the next centre (5.5): unit 0 no longer contributes
    assert out[10:, :].abs().max() == 0
