"""What the staff pages need to know about this installation and its live flow."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.web.deps import ServicesDep, StaffUser
from flows.model import Flow

router = APIRouter(prefix="/api", tags=["config"])


class StaffConfig(BaseModel):
    simulated_telephony: bool
    language: str  # the language of the labels below (`lang` when the flow has it)
    languages: list[str]  # the flow's languages, the first is the one a call starts in
    products: dict[str, str]  # every product of the flow: its label, or its id without one
    themes: dict[str, str]  # every theme a call can be queued with: its label, or its id
    nodes: dict[str, str]  # the nodes the flow labels (menus a caller passed)
    node_kinds: dict[str, str]  # every node's kind (menu, verify, queue ...)
    # per product: the wrap-up codes an adviser can pick for its calls (its own, then the shared
    # ones) with their labels; "" is a call without a product (shared codes only)
    wrap_up_codes: dict[str, dict[str, str]]


def _label(texts: dict[str, str] | None, language: str, flow: Flow, fallback: str) -> str:
    texts = texts or {}
    return texts.get(language) or texts.get(flow.default_language) or fallback


def product_labels(flow: Flow, language: str | None = None) -> dict[str, str]:
    """What the pages show for each product of the flow, in `language` (default: the flow's
    first)."""
    language = language if language in flow.languages else flow.default_language
    return {p: _label(flow.labels.products.get(p), language, flow, p) for p in flow.products}


def staff_config(flow: Flow, language: str | None, *, simulated_telephony: bool) -> StaffConfig:
    language = language if language in flow.languages else flow.default_language
    labels = flow.labels
    return StaffConfig(
        simulated_telephony=simulated_telephony,
        language=language,
        languages=flow.languages,
        products=product_labels(flow, language),
        themes={t: _label(labels.themes.get(t), language, flow, t) for t in flow.themes()},
        nodes={
            node_id: _label(texts, language, flow, node_id)
            for node_id, texts in labels.nodes.items()
            if node_id in flow.nodes
        },
        node_kinds={node_id: node.kind for node_id, node in flow.nodes.items()},
        wrap_up_codes={
            product: {
                code: _label(texts, language, flow, code)
                for code, texts in flow.wrap_up_codes.for_product(product or None).items()
            }
            for product in ["", *flow.products]
        },
    )


@router.get("/config")
async def config(
    services: ServicesDep,
    _: StaffUser,
    lang: Annotated[
        str | None, Query(max_length=8, description="e.g. nl (default: the flow's first)")
    ] = None,
) -> StaffConfig:
    """Staff only, as all of /api: whether telephony is simulated, and from the live flow its
    languages, what the pages show for its products, themes and nodes, and the wrap-up codes
    of each product, in `lang`."""
    return staff_config(services.flows.flow, lang, simulated_telephony=services.simulated_telephony)
