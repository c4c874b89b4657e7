"""The demo report's HTML, rendered from the jinja2 template with fake numbers (no demo run):
captions, escaping, the run block, no duplicated table, the collapsible numbers table."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from captum_interactions.metrics import PairMaskingResult
from fl_i2moe_layer.experiments.demo import (
    DemoSettings,
    Example,
    Figure,
    Page,
    masking_table,
    readable_name,
    render_report,
    write_report,
)

EVIL = "<script>alert('x')</script>"


class Outline(HTMLParser):
    """The parts of a page the tests look at: tables (their text and the open elements
    around them), images (and whether their figure has a caption), all text."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tables: list[tuple[list[str], list[str]]] = []  # (enclosing tags, text)
        self.figures: list[dict[str, int]] = []
        self.images_outside_figures = 0
        self.ids: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("meta", "img", "br", "hr", "link", "input"):
            if tag == "img":
                if "figure" in self.stack:
                    self.figures[-1]["img"] += 1
                else:
                    self.images_outside_figures += 1
            return
        self.stack.append(tag)
        self.ids.update(v for k, v in attrs if k == "id" and v)
        if tag == "table":
            self.tables.append((list(self.stack[:-1]), []))
        elif tag == "figure":
            self.figures.append({"img": 0, "figcaption": 0})
        elif tag == "figcaption" and self.figures:
            self.figures[-1]["figcaption"] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self.stack:
            while self.stack.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if "table" in self.stack:
            depth = self.stack.count("table")
            open_tables = [t for t in self.tables if t[0].count("table") == depth - 1]
            open_tables[-1][1].append(data)


def _masking() -> PairMaskingResult:
    ranked = torch.tensor([[2.0, 3.0], [1.0, 2.5], [1.5, 3.5]])
    random = torch.rand(3, 2, 4, generator=torch.Generator().manual_seed(0))
    return PairMaskingResult(
        budgets=(1, 4), ranked_drop=ranked, random_drop=random,
        gap=ranked.mean(0) - random.mean(-1).mean(0), p_value=torch.tensor([0.0001, 0.02]),
        wins=torch.tensor([3, 3]), original=torch.ones(3), n_pairs=490, descending=True,
        alternative="greater", test="exchange")


def fake_page() -> Page:
    headline = {"routing_synergy_unique_0": 0.91, "fl_i2moe_accuracy": 0.975,
                "fl_i2moe_auroc": 0.99, "fl_i2moe_macro_f1": 0.97, "dense_accuracy": 0.95,
                "dense_auroc": 0.98, "dense_macro_f1": 0.949, "SII_p@1": 0.5, "SII_p@5": 1.0,
                "SII_n": 6, "SII_mask_gap@1": 3.25, "SII_mask_p@1": 1e-4, "RG_p@1": 1.0,
                "RG_p@5": 1.0, "RG_n": 5, "topk_aopc_mixture": 2.5, "wall_s": 71.3,
                "custom.value": 1.5}
    metrics = {"fl_i2moe": {"accuracy": 0.975, "auroc": 0.99, "macro_f1": 0.97, "loss": 0.1},
               "dense": {"accuracy": 0.95, "auroc": 0.98, "macro_f1": 0.949}}
    figure = Figure("routing_by_rule.png", "Routing weights", f"shows {EVIL}", "good",
                    "Error bars: ± one standard error over 12 examples.")
    example_figs = [Figure(f"ex0_{k}.png", k, "shows", "good", "no standard error")
                    for k in ("text", "image", "sii", "redundancy_gap")]
    return Page(settings={**vars(DemoSettings.quick()), "n": 240},
                started="2026-12-01 10:00:00 UTC", finished="2026-12-01 10:01:11 UTC",
                wall_s=71.3, versions=[("Python", "3.12"), ("torch", "2.13.0")],
                headline=headline, stderr={"SII_p@1": 0.22, "routing_synergy_unique_0": 0.01},
                metrics=metrics, figures=[figure],
                tables=[masking_table("SII ranking on synergy examples", _masking())],
                examples=[Example(f"Example 1: “{EVIL}”", [("unique_0 (text)", 0.9)],
                                  example_figs)])


@pytest.fixture(scope="module")
def page_html() -> str:
    return render_report(fake_page())


@pytest.fixture(scope="module")
def outline(page_html: str) -> Outline:
    parser = Outline()
    parser.feed(page_html)
    return parser


def test_every_image_sits_in_a_figure_with_a_caption(outline: Outline) -> None:
    assert outline.images_outside_figures == 0
    assert len(outline.figures) == 5
    for fig in outline.figures:
        assert fig == {"img": 1, "figcaption": 1}


def test_values_are_escaped(page_html: str) -> None:
    assert "<script>" not in page_html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page_html


def test_run_block_has_settings_versions_and_wall_time(page_html: str,
                                                        outline: Outline) -> None:
    assert {"run-settings", "run-environment", "wall-time"} <= outline.ids
    text = " ".join(outline.text)
    for field in ("n_samples", "n_show", "limit", "epochs", "seed"):
        assert field in text
    assert "2.13.0" in text and "Python" in text
    assert "1 min 11 s (71.3 s)" in text and "2026-12-01 10:01:11 UTC" in text


def test_no_table_appears_twice(outline: Outline) -> None:
    bodies = ["".join(text).split() for _, text in outline.tables]
    assert len(bodies) == 6  # settings, versions, task, recovery, one masking, numbers
    assert len({tuple(b) for b in bodies}) == len(bodies)


def test_raw_numbers_are_in_details_with_readable_names(outline: Outline,
                                                        page_html: str) -> None:
    numbers = [(around, "".join(text)) for around, text in outline.tables
               if "raw key" in "".join(text)]
    assert len(numbers) == 1
    around, text = numbers[0]
    assert "details" in around
    assert "FL-I2MoE — macro-F1 (test split)" in text and "fl_i2moe_macro_f1" in text
    assert "0.22" in text  # the standard error column
    # the other tables are not collapsed
    assert sum("details" in a for a, _ in outline.tables) == 1


def test_readable_names() -> None:
    assert readable_name("fl_i2moe.test_macro_f1") == "FL-I2MoE — macro-F1 (test split)"
    assert readable_name("dense_auroc") == "dense baseline — AUROC (test split)"
    assert readable_name("SII_p@1") == \
        "SII on synergy examples — planted pair in the top 1 (precision@1)"
    assert readable_name("RG_mask_gap@1").startswith("RG on redundancy examples — pair-masking")
    assert readable_name("routing_text_unique_0") == \
        "Routing weight of unique_0 (text) on text examples (mean)"
    assert readable_name("topk_aopc_random_synergy").endswith("random tokens")
    assert readable_name("concentration_dense_ig_gini") == \
        "Concentration, dense baseline mixture — IG Gini"
    assert readable_name("removal_image_unique_0") == (
        "Removal sensitivity: |change of unique_0 (text)'s logit| when the image is removed "
        "(mean)")
    assert readable_name("custom.value") == "Custom value"


def test_masking_table_has_standard_errors(page_html: str) -> None:
    table = masking_table("x", _masking())
    assert table.rows[0][0] == "1" and "±" in table.rows[0][1] and "±" in table.rows[0][2]
    assert table.rows[0][4] == "3/3" and table.rows[0][5] == "≤ 1e-04"
    assert "ranked drop" in page_html


def test_running_page_and_atomic_write(tmp_path: Path) -> None:
    running = Page(settings=vars(DemoSettings.quick()), started="2026-12-01 10:00:00 UTC",
                   running=True)
    path = write_report(tmp_path / "index.html", running)
    html = path.read_text(encoding="utf-8")
    assert "not finished" in html and "run in progress" in html.lower()
    assert "<figure" not in html and "<details" not in html and "wall time" not in html
    assert [p.name for p in tmp_path.iterdir()] == ["index.html"]  # no temporary left
