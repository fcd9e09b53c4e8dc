"""A flow as a readable tree for supervisors: nodes in the order a caller meets them, the keys
and outcomes that lead on, and every prompt in every language."""

from __future__ import annotations

from collections import deque

from pydantic import BaseModel

from flows.model import Flow, MenuNode, QueueNode, prompts_used, targets


class TreePrompt(BaseModel):
    field: str  # prompt, no_input, invalid
    id: str
    texts: dict[str, str]  # language -> text


class TreeEdge(BaseModel):
    on: str  # a key ("1"), or an outcome: next, open, closed, verified, on_fail ...
    to: str


class TreeNode(BaseModel):
    id: str
    kind: str
    prompts: list[TreePrompt]
    edges: list[TreeEdge]
    queue: str | None = None  # queue nodes: "product/theme"
    reachable: bool = True


class FlowTree(BaseModel):
    name: str
    start: str
    languages: list[str]
    nodes: list[TreeNode]


def flow_tree(flow: Flow) -> FlowTree:
    """Breadth first from the start, so menus come before what they lead to; nodes no caller
    can reach (the validator refuses them on publish) come last."""
    order: list[str] = []
    seen = {flow.start}
    pending = deque([flow.start])
    while pending:
        node_id = pending.popleft()
        order.append(node_id)
        for _, target in targets(flow.node(node_id)):
            if target in flow.nodes and target not in seen:
                seen.add(target)
                pending.append(target)
    unreachable = [node_id for node_id in flow.nodes if node_id not in seen]
    return FlowTree(
        name=flow.name,
        start=flow.start,
        languages=list(flow.languages),
        nodes=[_node(flow, n, reachable=True) for n in order]
        + [_node(flow, n, reachable=False) for n in unreachable],
    )


def _node(flow: Flow, node_id: str, *, reachable: bool) -> TreeNode:
    node = flow.node(node_id)
    prompts = [
        TreePrompt(field=field, id=prompt, texts=dict(flow.prompts.get(prompt, {})))
        for field, prompt in prompts_used(node)
    ]
    edges = [TreeEdge(on=field.removeprefix("options."), to=to) for field, to in targets(node)]
    if isinstance(node, MenuNode):
        for edge in edges:  # a key that switches the language says so: "9 (en)"
            option = node.option(edge.on) if edge.on in node.options else None
            if option is not None and option.language:
                edge.on = f"{edge.on} ({option.language})"
        if node.repeat:
            edges.append(TreeEdge(on=f"{node.repeat} (repeat)", to=node_id))
    queue = f"{node.product}/{node.theme}" if isinstance(node, QueueNode) else None
    return TreeNode(
        id=node_id,
        kind=node.kind,
        prompts=prompts,
        edges=edges,
        queue=queue,
        reachable=reachable,
    )


# -- the menu as callers meet it (the supervisor's "Menu"): texts and keys, not node ids --------


class MenuStep(BaseModel):
    node: str  # the node's id: for the page's data- attributes, never shown
    kind: str
    key: str | None = None  # the key a caller presses to get here ("1"); None: not a key
    via: str | None = None  # otherwise how: next, open, closed, on_fail, verified ...
    language: str | None = None  # a key that switches the call's language to this one
    label: str | None = None  # the node's name for staff (labels.nodes), if it has one
    says: list[str] = []  # the texts the caller hears here, in the chosen language
    ends: str | None = None  # queue, self_service or goodbye: where the call ends up
    product: str | None = None  # queue: the product and theme, by their staff names
    theme: str | None = None
    again: bool = False  # a step met before (a loop back): not repeated below
    steps: list[MenuStep] = []


class MenuTree(BaseModel):
    language: str
    languages: list[str]
    root: MenuStep


def _named(names: dict[str, dict[str, str]], key: str, language: str) -> str:
    return names.get(key, {}).get(language) or key


def menu_tree(flow: Flow, language: str) -> MenuTree:
    """Every step with what the caller hears and how they get on. A step is spelled out where
    a caller meets it first (breadth first: the shortest way there); elsewhere it appears as
    `again`, without its steps (menus loop back, paths join)."""
    home: dict[str, tuple[str, int] | None] = {flow.start: None}  # node -> (parent, edge)
    pending = deque([flow.start])
    while pending:
        parent = pending.popleft()
        for index, (_, target) in enumerate(targets(flow.node(parent))):
            if target not in home:
                home[target] = (parent, index)
                pending.append(target)

    def step(
        node_id: str, on: str | None, switch: str | None, came: tuple[str, int] | None
    ) -> MenuStep:
        node = flow.node(node_id)
        is_key = on is not None and on[:1] in "0123456789*#"
        found = MenuStep(
            node=node_id,
            kind=node.kind,
            key=on if is_key else None,
            via=None if is_key else on,
            language=switch,
            label=flow.labels.nodes.get(node_id, {}).get(language),
            says=[
                flow.prompts.get(prompt, {}).get(language, "")
                for field, prompt in prompts_used(node)
                if field == "prompt"
            ],
        )
        if isinstance(node, QueueNode):
            found.ends = "queue"
            found.product = _named(flow.labels.products, node.product, language)
            found.theme = _named(flow.labels.themes, node.theme, language)
        elif node.kind == "status":
            found.ends = "self_service"
        elif node.kind == "hangup":
            found.ends = "goodbye"
        if home.get(node_id) != came:
            found.again = True
            return found
        for index, (field, target) in enumerate(targets(node)):
            key = field.removeprefix("options.")
            option = node.option(key) if isinstance(node, MenuNode) and field != key else None
            switch = option.language if option else None
            found.steps.append(step(target, key, switch, (node_id, index)))
        return found

    root = step(flow.start, None, None, None)
    return MenuTree(language=language, languages=list(flow.languages), root=root)
