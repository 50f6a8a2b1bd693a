"""The two references beside lth-suite: the FLOP floor and the way peer LTH code trains."""

from __future__ import annotations

from pathlib import Path

from workloads import CIFAR_MEAN, CIFAR_STD, MNIST_MEAN, MNIST_STD, Case, build, mask_of, raw_data


def floor_runner(model, info, batch: int, device):
    """``run(n)``: n passes of the network's conv and matmul shapes alone, forward and backward."""
    import torch
    from torch import nn

    shapes: list[tuple[nn.Module, tuple[int, ...]]] = []
    hooks = [m.register_forward_hook(lambda m, args, out: shapes.append((m, tuple(args[0].shape))))
             for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()
        model(torch.zeros(batch, *info.input_shape, device=device))
        model.train()
    for hook in hooks:
        hook.remove()
    aten = torch.ops.aten
    ops = []
    for index, (module, in_shape) in enumerate(shapes):
        x = torch.randn(in_shape, device=device)
        w = torch.randn_like(module.weight)
        if isinstance(module, nn.Linear):
            x = x.reshape(-1, module.in_features)
            g = torch.randn(x.shape[0], module.out_features, device=device)
            ops.append(("linear", x, w, g, index > 0, None))
        else:
            out = torch.nn.functional.conv2d(x, w, None, module.stride, module.padding,
                                             module.dilation, module.groups)
            ops.append(("conv", x, w, torch.randn_like(out), index > 0, module))

    def step() -> None:
        for kind, x, w, g, needs_input_grad, module in ops:
            if kind == "linear":
                torch.mm(x, w.t())
                torch.mm(g.t(), x)
                if needs_input_grad:
                    torch.mm(g, w)
            else:
                aten.convolution(x, w, None, module.stride, module.padding, module.dilation,
                                 False, [0, 0], module.groups)
                aten.convolution_backward(g, x, w, None, module.stride, module.padding,
                                          module.dilation, False, [0, 0], module.groups,
                                          [needs_input_grad, True, False])

    def run(iterations: int) -> None:
        for _ in range(iterations):
            step()

    return run


class PeerDataset:
    """A torchvision-style dataset: uint8 arrays, PIL image and transforms per sample."""

    def __init__(self, images, labels, mean, std):
        from torchvision import transforms

        self.images, self.labels = images, labels
        self.mode = "L" if images.ndim == 3 else "RGB"
        self.transform = transforms.Compose([transforms.ToTensor(),
                                             transforms.Normalize(mean, std)])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        from PIL import Image

        image = Image.fromarray(self.images[index], mode=self.mode)
        return self.transform(image), int(self.labels[index])


def peers_runner(case: Case, device, mnist: Path, workers: int):
    """``run(n)``: n steps the peers' way: DataLoader, prune masks, for-each optimizer."""
    import torch
    import torch.nn.functional as F
    from torch.nn.utils import prune
    from torch.utils.data import DataLoader

    x_raw, y_raw, _ = raw_data(case.data, mnist)
    held = min(500, len(y_raw) // 10)
    mean, std = (MNIST_MEAN, MNIST_STD) if case.data == "mnist" else (CIFAR_MEAN, CIFAR_STD)
    dataset = PeerDataset(x_raw[2 * held:], y_raw[2 * held:], mean, std)
    loader = DataLoader(dataset, batch_size=case.batch, shuffle=True, drop_last=True,
                        num_workers=workers, pin_memory=device.type == "cuda",
                        persistent_workers=workers > 0)
    model, _ = build(case, device)
    modules = dict(model.named_modules())
    for name, keep in mask_of(model, case.density).items():
        prune.custom_from_mask(modules[name.rsplit(".", 1)[0]], "weight", keep.to(device))
    settings = {k: v for k, v in case.optimizer.items() if k != "optimizer"}
    if case.optimizer["optimizer"] == "adam":
        optimizer = torch.optim.Adam(model.parameters(), foreach=False, **settings)
    elif case.optimizer["optimizer"] == "adamw":
        optimizer = torch.optim.AdamW(model.parameters(), foreach=False, **settings)
    else:
        optimizer = torch.optim.SGD(model.parameters(), foreach=False, **settings)
    model.train()
    batches = iter(loader)

    def run(iterations: int) -> None:
        nonlocal batches
        for _ in range(iterations):
            try:
                x, y = next(batches)
            except StopIteration:  # a new epoch: a new shuffle
                batches = iter(loader)
                x, y = next(batches)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()

    return run
