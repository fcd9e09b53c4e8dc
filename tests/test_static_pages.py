"""The staff pages' scripts hold no copy of the flow: products, themes and menus with their
labels come from the live flow (GET /api/config), so a change of the flow shows on the desk.
(Codes of the model, such as node kinds and application statuses, may be translated there.)"""

from __future__ import annotations

import re

import pytest

from api.settings import DEFAULT_FLOW
from flows.loader import load_flow
from tests.support.paths import ROOT

STATIC = ROOT / "api" / "web" / "static"
FLOW = load_flow(DEFAULT_FLOW)


@pytest.mark.parametrize(
    "script",
    [
        "desk.js",
        "supervisor.js",
        "staff.js",
        "draft_problems_nl.js",
        "reports.js",
        "reports.html",
    ],
)
def test_the_pages_have_no_copy_of_the_flow_s_products_menus_or_labels(script: str) -> None:
    source = (STATIC / script).read_text(encoding="utf-8")
    labels = FLOW.labels
    assert labels.products["vog_np"]["nl"] == "VOG natuurlijk persoon"  # the flow has them
    for product in FLOW.products:  # as a string or a key
        assert not re.search(rf"[\"'`]{product}[\"'`]|\b{product}\s*:", source), product
    assert not re.search(r"\bvog_", source)
    menus = [node_id for node_id, node in FLOW.nodes.items() if node.kind == "menu"]
    texts = [
        *(text for texts in labels.products.values() for text in texts.values() if len(text) > 4),
        *(text for menu in menus for text in labels.nodes.get(menu, {}).values()),
        *menus,
    ]
    assert len(texts) > 20
    for text in texts:
        assert text not in source, f"{script} has {text!r} from the flow"
    assert not re.search(r"\b(PRODUCTS|THEMES|THEME_CATEGORY|NODES|LANGUAGES)\b", source)
