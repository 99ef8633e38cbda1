"""Errors that need no model are raised before torch is imported (issue #25, "errors in a blink").

Each case runs the real CLI ``main`` in a fresh interpreter and then checks ``sys.modules``: the error is one
exact line, exit status 2, and torch was never imported. No timings here (``bench/errors.py`` measures them).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torchvision
from cli_helpers import run_cli
from planted import PlantedProbe, write_model

from unitscope.data.broden_export import write_broden
from unitscope.errors import UsageError
from unitscope.models.catalog import TORCHVISION_MODELS, TORCHVISION_VERSION, known_layers

SCENEWORLD = "sceneworld, sceneworld-objects, sceneworld-background, sceneworld-recolored, sceneworld-objects-recolored"
PROBE = ("import sys; from unitscope.cli.main import main\n"
         "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
         "    assert 'torch' not in sys.modules, 'torch was imported'\n"
         "    assert 'numpy' not in sys.modules, 'numpy was imported'\n    raise\n")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of the planted net (quantile 0.3), a non-empty folder and a checkpoint-less name."""
    root = tmp_path_factory.mktemp("blink")
    write_broden(root / "broden", PlantedProbe(12), progress=False)
    model = write_model(root)
    (root / "full").mkdir()
    (root / "full" / "something.txt").write_text("not a run")
    code = 0
    try:
        from unitscope.cli.main import main

        main(["dissect", "--model", model, "--layer", "0", "--data", str(root / "broden"), "--quantile", "0.3",
              "--mean", "0,0,0", "--std", "1,1,1", "--workers", "0", "--bootstrap", "0", "--no-report",
              "--out", str(root / "run")])
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    assert code == 0
    return root


def blink(root: Path, *args: str) -> str:
    """Run ``unitscope ARGS`` in a new interpreter (cwd ``root``); the one stderr line (exit 2, no torch)."""
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=root)
    assert "torch was imported" not in done.stderr and "numpy was imported" not in done.stderr, done.stderr
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


CASES: list[tuple[list[str], str]] = [
    # a class-names file that is not there fails while the options are parsed
    (["evaluate", "--model", "resnet18", "--class-names", "nope.txt", "--data", "sceneworld"],
     "unitscope: error: --class-names nope.txt: no such file; give the path of a class-names file"),
    (["ablate", "--model", "resnet18", "--class-names", "nope.txt", "--layer", "layer4", "--out", "x"],
     "unitscope: error: --class-names nope.txt: no such file; give the path of a class-names file"),
    # dissect: the cases
    (["dissect", "--model", "resnet18", "--data", "nope", "--layer", "layer4", "--out", "x"],
     f"unitscope: error: --data 'nope' is neither {SCENEWORLD} nor an existing directory"),
    (["dissect", "--model", "resnet18", "--weights", "nope.pth", "--layer", "layer4", "--out", "x"],
     "unitscope: error: checkpoint nope.pth does not exist; pass an existing file to --weights"),
    (["dissect", "--model", "sceneworld-scene", "--weights", "nope", "--layer", "conv5", "--out", "x"],
     "unitscope: error: checkpoint nope does not exist; pass an existing file to --weights"),
    (["dissect", "--model", "resnet19", "--layer", "layer4", "--out", "x"],
     "unitscope: error: unknown model 'resnet19' (did you mean resnet18, resnet152, resnet101, resnet50?); give a "
     "torchvision name, sceneworld-scene, sceneworld-object or path/file.py:callable"),
    (["dissect", "--model", "resnet18", "--layer", "layer5", "--out", "x"],
     "unitscope: error: unknown layer 'layer5'; closest: layer4, layer3, layer2, layer1, layer4.1"),
    (["dissect", "--model", "sceneworld-scene", "--layer", "conv9", "--out", "x"],
     "unitscope: error: unknown layer 'conv9'; closest: conv5, conv4, conv3, conv2, conv1"),
    (["dissect", "--model", "alexnet", "--layer", "pool9", "--out", "x"],
     "unitscope: error: unknown layer 'pool9'; closest: pool5, pool2, pool1, avgpool"),
    (["dissect", "--model", "nope.py:build", "--layer", "0", "--out", "x"],
     "unitscope: error: model file nope.py does not exist; give --model path/file.py:callable"),
    (["dissect", "--model", "resnet18", "--layer", "layer4", "--out", "full"],
     "unitscope: error: full exists and is not a dissection run; choose another --out"),
    (["dissect", "--model", "resnet18", "--layer", "layer4", "--quantile", "2", "--out", "x"],
     "unitscope: error: --quantile must be in (0, 1), got 2.0"),
    (["dissect", "--model", "resnet18", "--layer", "layer4", "--topk", "0", "--out", "x"],
     "unitscope: error: --topk must be positive, got 0"),
    (["dissect", "--model", "resnet18", "--layer", "layer4", "--n", "0", "--out", "x"],
     "unitscope: error: --n must be positive, got 0"),
    (["dissect", "--model", "resnet18", "--layer", "layer4", "--num-classes", "0", "--out", "x"],
     "unitscope: error: --num-classes must be positive, got 0"),
    # cam
    (["cam", "--model", "resnet18", "--data", "sceneworld", "--out", "full"],
     "unitscope: error: full is not empty; choose another path or pass --overwrite"),
    (["cam", "--model", "resnet18", "--data", "nope", "--out", "x"],
     f"unitscope: error: --data 'nope' is neither {SCENEWORLD} nor an existing directory"),
    (["cam", "--model", "resnet18", "--image", "nope.png", "--out", "x"],
     "unitscope: error: --image nope.png does not exist; give the path of a PNG or JPEG file"),
    (["cam", "--model", "resnet18", "--layer", "layer5", "--data", "sceneworld", "--out", "x"],
     "unitscope: error: unknown layer 'layer5'; closest: layer4, layer3, layer2, layer1, layer4.1"),
    (["cam", "--model", "resnet18", "--top-fraction", "0", "--data", "sceneworld", "--out", "x"],
     "unitscope: error: --top-fraction must be in (0, 1], got 0"),
    (["cam", "--model", "resnet18", "--pictures", "-1", "--data", "sceneworld", "--out", "x"],
     "unitscope: error: --pictures must be 0 or more, got -1"),
    # segment
    (["segment", "--model", "resnet18", "--run", "nope", "--data", "sceneworld", "--out", "x"],
     "unitscope: error: --run nope does not exist (no summary.json); give the --out directory of a finished "
     "`unitscope dissect`"),
    (["segment", "--model", "resnet18", "--run", "run", "--data", "sceneworld", "--out", "full"],
     "unitscope: error: full is not empty; choose another path or pass --overwrite"),
    (["segment", "--model", "resnet18", "--run", "run", "--layer", "9", "--data", "sceneworld", "--out", "x"],
     "unitscope: error: the run has no layer '9'; its layers are 0"),
    # see
    (["see", "--run", "nope", "--data", "sceneworld", "--out", "x"],
     "unitscope: error: --run nope does not exist (no summary.json); give the --out directory of a finished "
     "`unitscope dissect`"),
    (["see", "--run", "run", "--data", "sceneworld", "--out", "full"],
     "unitscope: error: full is not empty; choose another path or pass --overwrite"),
    (["see", "--run", "run", "--image", "nope.png", "--out", "x"],
     "unitscope: error: --image nope.png does not exist; give the path of a PNG or JPEG file"),
    (["see", "--run", "run", "--layer", "9", "--data", "sceneworld", "--out", "x"],
     "unitscope: error: the run has no layer '9'; its layers are 0"),
    # compare
    (["compare", "run", "nope", "--out", "x"],
     "unitscope: error: RUN_B nope does not exist (no summary.json); give the --out directory of a finished "
     "`unitscope dissect`"),
    (["compare", "run", "run", "--out", "full"],
     "unitscope: error: full is not empty; choose another path or pass --overwrite"),
    # minimal
    (["minimal", "--model", "sceneworld-scene", "--data", "sceneworld", "--out", "full"],
     "unitscope: error: full is not empty; choose another path or pass --overwrite"),
    (["minimal", "--model", "sceneworld-scene", "--data", "nope", "--out", "x"],
     f"unitscope: error: --data 'nope' is neither {SCENEWORLD} nor a folder of class sub-folders"),
    (["minimal", "--model", "sceneworld-scene", "--image", "nope.png", "--class", "beach", "--out", "x"],
     "unitscope: error: --image nope.png does not exist; give the path of a PNG or JPEG file"),
    # explain
    (["explain", "--run", "run", "--layer", "9", "--out", "x"],
     "unitscope: error: run has no layer '9'; it holds 0"),
    (["explain", "--run", "run", "--layer", "0", "--out", "full"],
     "unitscope: error: full exists and is not empty; choose another --out or pass --overwrite"),
    (["explain", "--run", "run", "--layer", "0", "--holdout", "1", "--out", "x"],
     "unitscope: error: --holdout 1.0 is not a fraction in (0, 1); 0.5 holds out every second image"),
    # ablate
    (["ablate", "--model", "sceneworld-scene", "--layer", "conv9", "--units", "1", "--out", "x"],
     "unitscope: error: unknown layer 'conv9'; closest: conv5, conv4, conv3, conv2, conv1"),
    (["ablate", "--model", "sceneworld-scene", "--layer", "conv5", "--run", "nope", "--out", "x"],
     "unitscope: error: --run nope does not exist (no summary.json); give the --out directory of a finished "
     "`unitscope dissect`"),
    (["ablate", "--model", "sceneworld-scene", "--layer", "conv5", "--units", "1", "--out", "full"],
     "unitscope: error: full is not empty; choose another path or pass --overwrite"),
    (["ablate", "--model", "sceneworld-scene", "--layer", "conv5", "--data", "nope", "--units", "1", "--out", "x"],
     f"unitscope: error: --data 'nope' is neither {SCENEWORLD} nor a folder of class sub-folders"),
    # report, rf, evaluate, layers
    (["report", "nope"],
     "unitscope: error: RUN nope does not exist (no summary.json); give the --out directory of a finished "
     "`unitscope dissect`"),
    (["report", "run", "--units", "0"], "unitscope: error: --units must be at least 1, got 0"),
    (["rf", "--model", "alexnet", "--layer", "conv9"],
     "unitscope: error: unknown layer 'conv9'; closest: conv5, conv4, conv3, conv2, conv1"),
    (["rf", "--model", "alexnet", "--stride", "0"], "unitscope: error: --stride must be positive, got 0"),
    (["evaluate", "--model", "resnet19"],
     "unitscope: error: unknown model 'resnet19' (did you mean resnet18, resnet152, resnet101, resnet50?); give a "
     "torchvision name, sceneworld-scene, sceneworld-object or path/file.py:callable"),
    (["evaluate", "--model", "sceneworld-scene", "--data", "nope"],
     f"unitscope: error: --data 'nope' is neither {SCENEWORLD} nor a folder of class sub-folders"),
    (["evaluate", "--model", "sceneworld-scene", "--transfer", "conv9"],
     "unitscope: error: unknown layer 'conv9'; closest: conv5, conv4, conv3, conv2, conv1"),
    (["layers", "--model", "vgg17"],
     "unitscope: error: unknown model 'vgg17' (did you mean vgg19, vgg16, vgg13, vgg11?); give a torchvision name, "
     "sceneworld-scene, sceneworld-object or path/file.py:callable"),
]


@pytest.mark.parametrize(("args", "line"), CASES, ids=[" ".join(a[:1] + a[-3:-2]) + f"-{i}"
                                                       for i, (a, _) in enumerate(CASES)])
def test_error_before_torch(world: Path, args: list[str], line: str) -> None:
    assert blink(world, *args) == line


def test_a_different_finished_run_is_named_by_its_first_difference_before_torch(world: Path) -> None:
    model = str(world / "planted_net.py") + ":build"
    got = blink(world, "dissect", "--model", model, "--layer", "0", "--data", "broden", "--quantile", "0.4",
                "--mean", "0,0,0", "--std", "1,1,1", "--workers", "0", "--bootstrap", "0", "--no-report",
                "--out", "run")
    assert got == ("unitscope: error: run holds a different finished run: setting quantile differs (0.3 vs 0.4); "
                   "choose another --out or pass --overwrite")
    got = blink(world, "dissect", "--model", model, "--layer", "0", "--data", "broden", "--quantile", "0.4",
                "--topk", "5", "--mean", "0,0,0", "--std", "1,1,1", "--bootstrap", "0", "--out", "run")
    assert got == ("unitscope: error: run holds a different finished run: setting quantile differs (0.3 vs 0.4); "
                   "and 1 more difference; choose another --out or pass --overwrite")


def test_the_static_model_list_is_torchvisions() -> None:
    assert torchvision.__version__.split("+")[0] == TORCHVISION_VERSION
    assert list(TORCHVISION_MODELS) == torchvision.models.list_models(module=torchvision.models)


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("spec", ["resnet18", "alexnet", "googlenet", "vit_b_16", "regnet_x_400mf",
                                  "sceneworld-scene", "sceneworld-object"])
def test_the_shipped_layer_names_are_the_models(spec: str) -> None:
    from unitscope.models.layer_table import architecture, layer_names_of
    from unitscope.models.loading import load_model

    net = load_model(spec).module if spec.startswith("sceneworld") else architecture(spec)
    assert known_layers(spec) == layer_names_of(net)


def test_the_shipped_table_lists_every_torchvision_model() -> None:
    assert all(known_layers(spec) is not None for spec in TORCHVISION_MODELS)
    assert known_layers("file.py:build") is None


def test_closest_layers_name_each_layer_once() -> None:
    from unitscope.models.layers import resolve_layer
    from unitscope.models.loading import load_model

    with pytest.raises(UsageError) as caught:
        resolve_layer(load_model("sceneworld-scene").module, "conv9")
    assert str(caught.value) == "unknown layer 'conv9'; closest: conv5, conv4, conv3, conv2, conv1"


def test_a_known_layer_and_model_pass_the_precheck(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The prechecks refuse only what is certainly wrong: paper names and module paths both pass."""
    from unitscope.cli.prechecks import check_model_args

    check_model_args("alexnet", None, None, ["conv5", "features.10", "pool5"])
    check_model_args("resnet18", "IMAGENET1K_V1", 365, ["layer4", "layer4.1.conv2"])
    check_model_args("sceneworld-scene", None, None, ["conv5", "fc7"])
    assert run_cli(capsys, "layers", "--model", "sceneworld-scene", "--maps-only").code == 0
