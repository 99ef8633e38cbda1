"""``unitscope annotations agree`` on a hand case: three workers, three units of a planted run, every number
of the agreement computed by hand below.

The run (the planted world's ``features``): unit 0 "square" (object, IoU 1; colour label "red"), unit 1 "bar"
(object, IoU 1; colour "green", scene "left"), unit 2 no label (category none, IoU 0).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from annotate_fixtures import add_annotator, make_store
from cli_helpers import run_cli
from test_analysis_planted import dissect_planted

from unitscope.annotate.agree import (
    agreement_cells,
    agreement_summary,
    agreement_table,
    format_agreement,
    scatter_plot,
)
from unitscope.annotate.runview import read_run
from unitscope.annotate.security import token_hash
from unitscope.annotate.sources import load_annotations

SCENE, OBJECT, REGION, TEXTURE, COLOR = 1, 2, 3, 5, 6  # the paper's category codes
# (worker, unit) -> (concept, category, precision)
ANSWERS: dict[tuple[str, int], tuple[str, int, float]] = {
    ("w1", 0): ("squares", OBJECT, 0.9),  # plural dropped: exact
    ("w2", 0): ("red", COLOR, 0.9),  # no rule against "square"; the colour label "red" matches
    ("w3", 0): ("square", OBJECT, 0.9),
    ("w1", 1): ("stripe", REGION, 0.5),
    ("w2", 1): ("green bar", OBJECT, 0.5),  # "bar" is a whole word of it: substring
    ("w3", 1): ("line", REGION, 0.5),  # majority region: agrees with object (region -> object or material)
    ("w1", 2): ("sky", SCENE, 0.2),
    ("w2", 2): ("sky", SCENE, 0.2),  # majority scene, but the unit has no label (category none): disagrees
    ("w3", 2): ("cloud", TEXTURE, 0.2),
}


def test_agreement_of_three_workers_by_hand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, run_dir = dissect_planted(tmp_path)
    units = pd.read_csv(run_dir / "features" / "units.csv").set_index("unit")
    assert units.loc[0, ["label", "category", "iou", "color_label"]].tolist() == ["square", "object", 1.0, "red"]
    assert units.loc[1, ["label", "category", "iou", "color_label"]].tolist() == ["bar", "object", 1.0, "green"]
    assert units.loc[2, "category"] == "none" and units.loc[2, "iou"] == 0.0
    db = tmp_path / "answers.db"
    store = make_store(db, n_units=3, layer="features", per_unit=3)
    for worker in ("w1", "w2", "w3"):
        found = store.annotator_by_hash(token_hash(add_annotator(store, worker)))
        assert found is not None
        for k in range(3):
            assignment = store.assign(found[0], f"form-{worker}-{k}")
            assert assignment is not None
            task = store.task(assignment)
            assert task is not None
            concept, category, precision = ANSWERS[(worker, task.unit)]
            assert store.record(assignment, task.form_token, concept, category, precision, "[]")
    assert len(load_annotations(db)) == 9

    result = run_cli(capsys, "annotations", "agree", str(db), str(run_dir), "--json", "--plot",
                     str(tmp_path / "agreement.png"))
    assert result.code == 0, result.err
    numbers = json.loads(result.out)
    # Category: units 0 (object vs object) and 1 (region vs object) agree, unit 2 (scene vs none) not: 2/3.
    # Concept: unit 0 exact, unit 1 substring, unit 2 none (no label): 2/3; against any category's label,
    # unit 0 ("red" = colour label) and unit 1 ("green bar" ~ "bar", "green") match: 2/3.
    # Spearman: precision (.9, .5, .2) ranks (3, 2, 1); IoU (1, 1, 0) ranks (2.5, 2.5, 1); deviations
    # (1, 0, -1) and (.5, .5, -1): rho = 1.5 / sqrt(2 * 1.5) = sqrt(3) / 2.
    assert numbers == {"features": {
        "units": 3,
        "with_majority": 3,
        "category_agrees": 2,
        "category_agreement": pytest.approx(2 / 3),
        "concept_match": {"exact": 1, "synonym": 0, "substring": 1},
        "concept_match_rate": pytest.approx(2 / 3),
        "concept_matches_any_category_label": pytest.approx(2 / 3),
        "concept_any_category_count": 2,
        "spearman_precision_iou": pytest.approx(math.sqrt(3) / 2),
    }}
    assert (tmp_path / "agreement.png").is_file()
    table = agreement_table(load_annotations(db), read_run(run_dir)).set_index("unit")
    assert table["human_category"].tolist() == ["object", "region", "scene"]
    assert table["concept_rule"].tolist() == ["exact", "substring", ""]
    assert table["precision"].tolist() == pytest.approx([0.9, 0.5, 0.2])
    assert table.loc[2, "concept"] == "sky"  # the most frequent of the unit's concepts

    text = run_cli(capsys, "annotations", "agree", str(db), str(run_dir), "--plot", str(tmp_path / "a2.png"))
    assert text.out.endswith("\n") and "{" not in text.out  # a table, not a Python dict
    assert text.out.splitlines() == [
        "layer     units  category agrees  concept matches (exact/synonym/substring)  any category's label  "
        "Spearman ρ(precision, IoU)",
        "features      3        2/3 (67%)                            2/3 (67%) 1/0/1             2/3 (67%)  "
        "                      0.87",
        f"plot (the same numbers, one panel per layer): {tmp_path / 'a2.png'}"]
    assert (tmp_path / "a2.png").stat().st_size > 1000


def test_agreement_plot_titles_are_the_table_rows(tmp_path: Path) -> None:
    """The plot and the table agree: each panel's title holds its layer's table cells, its legend the counts."""
    _, run_dir = dissect_planted(tmp_path)
    db = tmp_path / "answers.db"
    store = make_store(db, n_units=3, layer="features", per_unit=1)
    found = store.annotator_by_hash(token_hash(add_annotator(store, "w1")))
    assert found is not None
    for k in range(3):
        assignment = store.assign(found[0], f"form-{k}")
        assert assignment is not None
        task = store.task(assignment)
        assert task is not None
        concept, category, precision = ANSWERS[("w1", task.unit)]
        store.record(assignment, task.form_token, concept, category, precision, "[]")
    table = agreement_table(load_annotations(db), read_run(run_dir))
    numbers = agreement_summary(table)
    [title] = scatter_plot(table, numbers, tmp_path / "p.png")
    row = format_agreement(numbers).splitlines()[1]
    cells = agreement_cells("features", numbers["features"])
    # w1 alone: categories object/region/scene agree on units 0, 1 (2/3); only "squares" names its label (1/3)
    assert cells == {"layer": "features", "units": "3", "category": "2/3 (67%)", "concept": "1/3 (33%) 1/0/0",
                     "any": "1/3 (33%)", "rho": "0.87"}
    assert all(cells[k] in row for k in ("layer", "category", "concept", "rho"))
    assert title == "features: 3 units; category agrees 2/3 (67%)\nconcept matches 1/3 (33%) 1/0/0; ρ = 0.87"
