"""Fused Adam, AdamW and SGD over plain tensor lists, through torch's own functional updates.

``torch.optim.Adam`` and ``SGD`` cost more than their math on small networks: every
``step()`` rebuilds tensor lists and enters profiler and grad-mode contexts (about
0.1 ms, a tenth of a LeNet-300-100 step on the CPU), and the first optimizer a process
builds imports ``torch._dynamo`` (about a second). ``FusedOptimizer`` keeps the state
lists itself and calls the functional forms those classes call
(``torch.optim.adam.adam``, ``torch.optim.adamw.adamw`` and ``torch.optim.sgd.sgd`` with
``fused=True``), with
state created as they create it, so each update is theirs, bit for bit.
"""

from __future__ import annotations

import torch
from torch.optim.adam import adam
from torch.optim.adamw import adamw
from torch.optim.sgd import sgd

KINDS = ("adam", "adamw", "sgd")
ADAPTIVE = ("adam", "adamw")  # the kinds with Adam's moments and step counts


class FusedOptimizer:
    """Adam, AdamW (decoupled weight decay) or SGD (momentum, Nesterov, weight decay) over
    ``params``, fused kernels.

    ``lr`` may be changed between steps. A parameter without a gradient is skipped, and
    its state is not created or advanced, as ``torch.optim`` does.
    """

    def __init__(self, params: list[torch.Tensor], kind: str, lr: float, *,
                 momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        if kind not in KINDS:
            raise ValueError(f"unknown optimizer '{kind}': expected one of {', '.join(KINDS)}")
        self.params, self.kind, self.lr = params, kind, lr
        self.momentum, self.nesterov, self.weight_decay = momentum, nesterov, weight_decay
        self.betas, self.eps = betas, eps
        # Per parameter, created at its first gradient as torch.optim creates it: Adam's
        # exp_avg, exp_avg_sq and step count; SGD's momentum buffer (filled by the fused
        # kernel's first step).
        self.exp_avgs: list[torch.Tensor | None] = [None] * len(params)
        self.exp_avg_sqs: list[torch.Tensor | None] = [None] * len(params)
        self.steps: list[torch.Tensor | None] = [None] * len(params)
        self.buffers: list[torch.Tensor | None] = [None] * len(params)
        self._complete = False  # every parameter has its state: the lists go as they are

    @property
    def has_state(self) -> bool:
        """Whether any parameter has optimizer state yet (a fresh optimizer has none)."""
        return any(t is not None for t in (*self.steps, *self.buffers))

    def zero_grad(self) -> None:
        """Drop the gradients (``set_to_none=True``)."""
        for param in self.params:
            param.grad = None

    def step(self) -> None:
        """One update over the parameters that have a gradient."""
        grads = [p.grad for p in self.params]
        if self._complete and not any(g is None for g in grads):
            self._update(self.params, grads, self.exp_avgs, self.exp_avg_sqs, self.steps,
                         self.buffers)
            return
        present = [i for i, g in enumerate(grads) if g is not None]
        if self.kind in ADAPTIVE:
            for i in present:
                if self.steps[i] is None:
                    param = self.params[i]
                    self.exp_avgs[i] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    self.exp_avg_sqs[i] = torch.zeros_like(param,
                                                           memory_format=torch.preserve_format)
                    self.steps[i] = torch.zeros((), dtype=torch.float32, device=param.device)
        buffers = [self.buffers[i] for i in present]
        self._update([self.params[i] for i in present], [grads[i] for i in present],
                     [self.exp_avgs[i] for i in present], [self.exp_avg_sqs[i] for i in present],
                     [self.steps[i] for i in present], buffers)
        if self.kind == "sgd" and self.momentum:
            for i, buffer in zip(present, buffers):  # the kernel fills them on its first step
                self.buffers[i] = buffer
        self._complete = len(present) == len(self.params)

    def reset_(self, param: torch.Tensor, positions: torch.Tensor) -> None:
        """Zero the state of ``param`` at boolean ``positions`` (regrown weights start afresh;
        Adam's step count is per tensor and goes on)."""
        index = next(i for i, p in enumerate(self.params) if p is param)
        with torch.no_grad():
            for states in (self.exp_avgs, self.exp_avg_sqs, self.buffers):
                if states[index] is not None:
                    states[index].masked_fill_(positions, 0)

    def _update(self, params: list, grads: list, exp_avgs: list, exp_avg_sqs: list,
                steps: list, buffers: list) -> None:
        if not params:
            return
        with torch.no_grad():
            if self.kind in ADAPTIVE:
                update = adam if self.kind == "adam" else adamw
                update(params, grads, exp_avgs, exp_avg_sqs, [], steps, fused=True,
                       amsgrad=False, beta1=self.betas[0], beta2=self.betas[1], lr=self.lr,
                       weight_decay=self.weight_decay, eps=self.eps, maximize=False)
            else:
                sgd(params, grads, buffers, fused=True, weight_decay=self.weight_decay,
                    momentum=self.momentum, lr=self.lr, dampening=0.0, nesterov=self.nesterov,
                    maximize=False)
