"""Fused Adam and SGD steps without torch.optim's per-call bookkeeping."""

from __future__ import annotations

import torch


class FastStep:
    """``optimizer.step()`` of fused Adam or SGD without torch.optim's per-call bookkeeping.

    ``Optimizer.step`` rebuilds its tensor lists and enters profiler and grad-mode
    contexts at every call: about 0.1 ms, a tenth of a LeNet-300-100 step on the CPU.
    The first step goes through the optimizer, which creates its state; later steps
    call the functional form that ``step`` itself calls (``torch.optim.adam.adam``,
    ``torch.optim.sgd.sgd``) with the state lists kept from then on and the param
    group's current hyperparameters, so the update is the optimizer's own, bit for bit.
    Anything else (several param groups, options the fast path does not pass on, a
    parameter without a gradient) goes through ``step()``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.optimizer = optimizer
        group = optimizer.param_groups[0]
        plain = (len(optimizer.param_groups) == 1 and bool(group.get("fused"))
                 and not group.get("maximize") and not group.get("differentiable")
                 and getattr(optimizer, "grad_scale", None) is None
                 and getattr(optimizer, "found_inf", None) is None)
        if type(optimizer) is torch.optim.Adam:
            self.kind = "adam" if plain and not group["amsgrad"] and not group["capturable"] else ""
        elif type(optimizer) is torch.optim.SGD:
            self.kind = "sgd" if plain else ""
        else:
            self.kind = ""
        self.params: list[torch.Tensor] = list(group["params"]) if self.kind else []
        self.state: list[list[torch.Tensor | None]] | None = None  # kept after the first step

    def __call__(self) -> None:
        """One optimizer step over the parameters' current gradients."""
        grads = [p.grad for p in self.params]
        if self.state is None or any(g is None for g in grads):
            self.optimizer.step()
            self._keep_state()
            return
        group = self.optimizer.param_groups[0]
        if self.kind == "adam":
            from torch.optim.adam import adam

            exp_avgs, exp_avg_sqs, steps = self.state
            beta1, beta2 = group["betas"]
            adam(self.params, grads, exp_avgs, exp_avg_sqs, [], steps, fused=True,
                 decoupled_weight_decay=group.get("decoupled_weight_decay", False),
                 amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"],
                 weight_decay=group["weight_decay"], eps=group["eps"], maximize=False)
        else:
            from torch.optim.sgd import sgd

            sgd(self.params, grads, self.state[0], fused=True,
                weight_decay=group["weight_decay"], momentum=group["momentum"],
                lr=group["lr"], dampening=group["dampening"], nesterov=group["nesterov"],
                maximize=False)

    def _keep_state(self) -> None:
        """After the optimizer's own step: its state as lists, once every parameter has one."""
        if not self.kind or self.state is not None:
            return
        if self.kind == "sgd" and self.optimizer.param_groups[0]["momentum"] == 0:
            self.state = [[None] * len(self.params)]  # plain SGD keeps no state
            return
        keys = ("exp_avg", "exp_avg_sq", "step") if self.kind == "adam" else ("momentum_buffer",)
        states = [self.optimizer.state.get(p, {}) for p in self.params]
        if all(state.get(key) is not None for state in states for key in keys):
            self.state = [[state[key] for state in states] for key in keys]
