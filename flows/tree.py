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
