"""What an autograd Function whose backward computes only the gradients the running pass uses
(``fisherae.convolutions``, ``fisherae.group_norm``) needs from autograd: whether to use the
Function at all, how its inputs enter, and which of their gradients the pass will use
(``_will_engine_execute_node``, which ``torch.utils.checkpoint`` uses too)."""

from __future__ import annotations

import torch


def runs_plainly(tensors) -> bool:
    """Whether the op should run as PyTorch's own instead of through the Function: no graph is
    being recorded, or under torch.func transforms (grad, vmap: the tests' float64 references),
    which do not tell a Function which gradients they need."""
    return (not torch.is_grad_enabled() or not any(t.requires_grad for t in tensors)
            or any(torch._C._functorch.is_functorch_wrapped_tensor(t) for t in tensors))


def entered(tensors) -> list:
    """The tensors (None kept), a leaf that requires grad entering through a view: during
    autograd.grad, autograd tells whether it will run a node only for inner nodes, not for a
    leaf's accumulator."""
    return [t.view_as(t) if t is not None and t.is_leaf and t.requires_grad else t for t in tensors]


def wanted(ctx) -> list[bool]:
    """Per tensor input of the Function (in order; an input passed as None has no entry), whether
    the running backward pass will use its gradient."""
    return [needed and node is not None and torch._C._will_engine_execute_node(node)
            for needed, (node, _) in zip(ctx.needs_input_grad, ctx.next_functions)]
