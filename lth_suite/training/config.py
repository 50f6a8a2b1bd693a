"""A ``Training`` section resolved to iterations: what one training is asked to do."""

from __future__ import annotations

from dataclasses import dataclass

from ..spec.sections import Training
from .acceleration import Acceleration
from .recipes import Decay, OptimizerBuilder
from .tasks import CLASSIFICATION, Task


@dataclass(frozen=True)
class TrainConfig:
    """A ``Training`` section resolved to iterations for one training split."""

    optimizer: str
    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float
    batch_size: int
    total: int
    warmup: int
    milestones: tuple[int, ...]
    gamma: float
    eval_every: int
    per_epoch: int  # iterations in one epoch
    acceleration: Acceleration = Acceleration()
    label_smoothing: float = 0.0  # of the training loss
    clip_grad_norm: float | None = None  # max global gradient norm; None: no clipping
    build_optimizer: OptimizerBuilder | None = None  # None: the fused built-in ``optimizer``
    decay: Decay | None = None  # after the warmup, in place of the milestones
    task: Task = CLASSIFICATION  # how a batch reaches the model, its loss and metrics

    @classmethod
    def resolve(cls, training: Training, n_train: int, auto_threads: int | None = None, *,
                build_optimizer: OptimizerBuilder | None = None,
                decay: Decay | None = None, task: Task = CLASSIFICATION) -> TrainConfig:
        """Turn epochs into iterations for ``n_train`` training examples; ``threads: auto``
        becomes ``auto_threads`` (None: torch's own thread count is left alone).
        ``build_optimizer``, ``decay`` and ``task`` are the spec's optimizer, schedule decay
        and task, as their plugins built them."""
        per_epoch = max(1, n_train // training.batch_size)
        schedule = training.schedule
        return cls(
            optimizer=training.optimizer.name, lr=training.lr, momentum=training.momentum,
            nesterov=training.nesterov, weight_decay=training.weight_decay,
            batch_size=training.batch_size,
            total=training.duration.to_iterations(per_epoch),
            warmup=schedule.warmup.to_iterations(per_epoch),
            milestones=tuple(sorted(m.to_iterations(per_epoch) for m in schedule.milestones)),
            gamma=schedule.gamma, eval_every=training.eval_every, per_epoch=per_epoch,
            acceleration=Acceleration(precision=training.precision,
                                      channels_last=training.channels_last,
                                      compile=training.compile,
                                      threads=auto_threads if training.threads == "auto"
                                      else training.threads),
            label_smoothing=training.label_smoothing, clip_grad_norm=training.clip_grad_norm,
            build_optimizer=build_optimizer, decay=decay, task=task,
        )

    def lr_at(self, iteration: int) -> float:
        """Learning rate of the step taken at ``iteration``: warmup, then milestones or
        the decay."""
        if self.decay is not None:
            after = max(0, iteration - self.warmup)
            lr = self.lr * self.decay(after, max(1, self.total - self.warmup))
        else:
            lr = self.lr * self.gamma ** sum(iteration >= m for m in self.milestones)
        if self.warmup and iteration < self.warmup:
            lr *= (iteration + 1) / self.warmup
        return lr
