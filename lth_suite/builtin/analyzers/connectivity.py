"""Which units of a masked network lie on a path from the input to the output.

Connectivity is computed on a small graph whose values are boolean vectors over
channels (conv) or features (linear): a prunable layer maps its input vector through
its mask's unit adjacency (``out x in``; a conv filter reaches an input channel when
any of its kernel weights from that channel is kept), ``add`` is a union (residual
shortcuts), ``cat`` concatenates channels, and every other single-input op (ReLU,
batch norm, pooling, dropout, flatten) passes channels through. Flatten from C
channels to C*H*W features is matched at the linear layer that consumes it.

The graph comes from ``torch.fx`` tracing the real network when one is available,
so residual nets are handled; otherwise the prunable layers are taken as a chain in
their order, which is exact for MLPs and plain conv nets (Conv-2/4/6, VGG) only.
A network neither path understands gets no connectivity (``None``).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
from torch import nn

ADD = {operator.add, operator.iadd, torch.add, "add", "add_"}
CAT = {torch.cat, torch.concat, "cat"}


class Unsupported(Exception):
    """The network has an op whose channel semantics this module does not know."""


@dataclass
class Node:
    """One value of the graph; ``op`` is input, layer (a prunable tensor), add, cat or pass."""

    op: str
    inputs: list[int] = field(default_factory=list)
    layer: str | None = None  # the prunable tensor's name, for ``layer`` nodes


@dataclass
class Graph:
    """Nodes in topological order and the index of the network's output."""

    nodes: list[Node]
    output: int


def adjacency(keep: torch.Tensor) -> torch.Tensor:
    """(out, in) boolean: output unit i has a kept weight from input unit j."""
    keep = keep.to("cpu", torch.bool)
    return keep.reshape(keep.shape[0], keep.shape[1], -1).any(dim=2)


def chain_graph(shapes: list[tuple[str, tuple[int, ...]]]) -> Graph | None:
    """The prunable tensors as a chain in the given order; None where shapes do not chain.

    A conv followed by a linear layer is accepted when the linear's inputs are a
    multiple of the conv's channels (flatten of C x H x W, channel-major).
    """
    nodes = [Node("input")]
    for i, (name, shape) in enumerate(shapes):
        if i:
            previous = shapes[i - 1][1]
            flatten = len(previous) == 4 and len(shape) == 2 and shape[1] % previous[0] == 0
            if shape[1] != previous[0] and not flatten:
                return None
        nodes.append(Node("layer", [i], name))
    return Graph(nodes, len(nodes) - 1) if shapes else None


SHAPE = "lth_suite_shape"  # node.meta key of a traced tensor value's shape


def _is_tensor(node: torch.fx.Node) -> bool:
    return SHAPE in node.meta


def _channels(node: torch.fx.Node) -> torch.Size:
    """A traced value's shape without the batch: (C, H, W) or (features,)."""
    return node.meta[SHAPE][1:]


class _ShapeRecorder(torch.fx.Interpreter):
    """Runs a traced network once, noting the shape of every tensor value on its node.

    What ``torch.fx.passes.shape_prop.ShapeProp`` records, without the fake-tensor
    machinery it loads (a third of a second on first use).
    """

    def run_node(self, n: torch.fx.Node):
        result = super().run_node(n)
        if isinstance(result, torch.Tensor):
            n.meta[SHAPE] = result.shape
        return result


def traced_graph(model: nn.Module, example: torch.Tensor, names: set[str]) -> Graph:
    """The graph of ``model`` by ``torch.fx``; raises ``Unsupported`` (or fx's errors)."""
    traced = torch.fx.symbolic_trace(model)
    _ShapeRecorder(traced).run(example)
    modules = dict(traced.named_modules())
    nodes: list[Node] = []
    index: dict[torch.fx.Node, int] = {}
    derived: set[torch.fx.Node] = set()  # values that depend on the input
    output = None
    for fx_node in traced.graph.nodes:
        if fx_node.op == "output":
            (result,) = fx_node.all_input_nodes
            output = index.get(result)
            continue
        if fx_node.op == "placeholder":
            index[fx_node], derived = len(nodes), derived | {fx_node}
            nodes.append(Node("input"))
            continue
        inputs = [n for n in fx_node.all_input_nodes if n in derived]
        if not inputs:
            continue  # a constant (get_attr, torch.zeros, ...)
        derived.add(fx_node)
        if not _is_tensor(fx_node):
            continue  # x.size(0) and friends feed shapes, not values
        sources = [n for n in inputs if n in index]
        if not sources:  # e.g. an item of split()'s tuple
            raise Unsupported(f"{fx_node.name} takes the input through a non-tensor value")
        tensors = [index[n] for n in sources]
        target = fx_node.target
        module = modules.get(target) if fx_node.op == "call_module" else None
        if isinstance(module, (nn.Conv2d, nn.Linear)) and f"{target}.weight" in names:
            if getattr(module, "groups", 1) != 1:
                raise Unsupported(f"{target} is a grouped convolution")
            node = Node("layer", tensors, f"{target}.weight")
        elif len(tensors) == 1 and not isinstance(module, (nn.Conv2d, nn.Linear)):
            # Only ops that keep channels (or flatten them) may pass them through.
            before, after = _channels(sources[0]), _channels(fx_node)
            flatten = len(before) == 3 and len(after) == 1 and after[0] == before.numel()
            if after[:1] != before[:1] and not flatten:
                raise Unsupported(f"{fx_node.name} changes the channels {before} -> {after}")
            node = Node("pass", tensors)
        elif target in ADD:
            node = Node("add", tensors)
        elif target in CAT and fx_node.kwargs.get("dim", fx_node.args[1] if len(fx_node.args) > 1
                                                   else 0) in (1, -3):
            node = Node("cat", tensors)
        else:
            raise Unsupported(f"{fx_node.name} ({target}) is not understood")
        index[fx_node] = len(nodes)
        nodes.append(node)
    if output is None:
        raise Unsupported("the output is not a traced tensor")
    return Graph(nodes, output)


def _fit(vector: torch.Tensor | None, size: int) -> torch.Tensor:
    """The vector at ``size`` units: None is "all", C channels expand to C*k features."""
    if vector is None:
        return torch.ones(size, dtype=torch.bool)
    if len(vector) == size:
        return vector
    if size % len(vector) == 0:
        return vector.repeat_interleave(size // len(vector))
    raise Unsupported(f"{len(vector)} units do not feed {size}")


def _fold(vector: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
    """Inverse of ``_fit`` for the backward pass: C*k features back onto C channels."""
    if reference is None or len(reference) == len(vector):
        return vector
    if len(vector) % len(reference) == 0:
        return vector.reshape(len(reference), -1).any(dim=1)
    raise Unsupported(f"{len(vector)} units do not fold onto {len(reference)}")


def connectivity(graph: Graph, mask: dict[str, torch.Tensor]
                 ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Per prunable tensor, its output units on an input-to-output path; and the inputs on one.

    Forward: the units some input reaches. Backward: the units that reach some output.
    A unit is connected when both hold. The inputs are at the granularity of their
    first consumer: pixels/features for an MLP, channels for a conv net.
    """
    adj = {name: adjacency(keep) for name, keep in mask.items()}
    fwd: list[torch.Tensor | None] = []
    for node in graph.nodes:
        values = [fwd[i] for i in node.inputs]
        if node.op == "input":
            fwd.append(None)
        elif node.op == "layer":
            a = adj[node.layer]
            fwd.append((a.float() @ _fit(values[0], a.shape[1]).float()) > 0)
        elif node.op == "pass":
            fwd.append(values[0])
        elif node.op == "add":
            known = [v for v in values if v is not None]
            size = len(known[0]) if known else None
            fwd.append(None if size is None
                       else torch.stack([_fit(v, size) for v in values]).any(0))
        else:  # cat
            if any(v is None for v in values):
                raise Unsupported("cat of the raw input")
            fwd.append(torch.cat(values))
    bwd: list[torch.Tensor | None] = [None] * len(graph.nodes)
    if fwd[graph.output] is None:
        raise Unsupported("no prunable layer between the input and the output")
    bwd[graph.output] = torch.ones(len(fwd[graph.output]), dtype=torch.bool)

    def give(i: int, vector: torch.Tensor) -> None:
        vector = _fold(vector, fwd[i])
        if bwd[i] is None:
            bwd[i] = vector
        elif len(bwd[i]) == len(vector):
            bwd[i] = bwd[i] | vector
        else:
            raise Unsupported("the input is consumed at two granularities")

    for i in reversed(range(len(graph.nodes))):
        node, back = graph.nodes[i], bwd[i]
        if back is None or node.op == "input":
            continue
        if node.op == "layer":
            a = adj[node.layer]
            give(node.inputs[0], (a.float().T @ _fit(back, a.shape[0]).float()) > 0)
        elif node.op == "cat":
            start = 0
            for j in node.inputs:
                give(j, back[start: start + len(fwd[j])])
                start += len(fwd[j])
        else:  # pass, add
            for j in node.inputs:
                give(j, back)
    units: dict[str, torch.Tensor] = {}
    for i, node in enumerate(graph.nodes):
        if node.op == "layer":
            here = fwd[i] & (bwd[i] if bwd[i] is not None else torch.zeros_like(fwd[i]))
            units[node.layer] = units[node.layer] | here if node.layer in units else here
    inputs = [bwd[i] for i, node in enumerate(graph.nodes) if node.op == "input"]
    reached = inputs[0] if inputs and inputs[0] is not None else torch.zeros(0, dtype=torch.bool)
    return units, reached
