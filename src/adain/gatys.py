"""The optimisation baseline of the paper's comparisons (Gatys et al., 2016): the output image itself
is optimised, starting from the content, to lower

    content_weight * MSE(f(x), f(content))  at relu4_1
  + style_weight * sum_i [MSE(mu(phi_i(x)), mu(phi_i(s))) + MSE(sigma(phi_i(x)), sigma(phi_i(s)))]

with the same normalised VGG and the same losses as AdaIN's training and evaluation, so the two
methods are compared on the objective both aim at. Slow by nature: every step is a forward and a
backward pass through the encoder.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from .losses import content_loss, style_loss
from .nets import taps


def gatys(
    encoder: nn.Sequential,
    content: Tensor,
    style: Tensor,
    iterations: int = 200,
    style_weight: float = 10.0,
    content_weight: float = 1.0,
    optimizer: Literal["lbfgs", "adam"] = "lbfgs",
    progress: bool = False,
) -> tuple[Tensor, list[float]]:
    """The optimised image (1, 3, H, W) in [0, 1] and the loss after each step.

    ``iterations`` counts loss evaluations (forward + backward passes), the cost that matters.
    """
    from tqdm import tqdm

    encoder = encoder.eval().requires_grad_(False)
    with torch.no_grad():
        content_target = encoder(content)
        style_targets = taps(encoder, style)
    image = content.clone(memory_format=torch.contiguous_format).requires_grad_(True)
    history: list[float] = []
    bar = tqdm(total=iterations, desc="gatys", unit="step", disable=not progress, leave=False)

    def objective() -> Tensor:
        feats = taps(encoder, image)
        loss = content_weight * content_loss(feats[-1], content_target) + style_weight * style_loss(
            feats, style_targets
        )
        return loss

    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS([image], lr=1.0, max_iter=iterations, max_eval=iterations, history_size=50,
                                line_search_fn="strong_wolfe", tolerance_grad=0.0, tolerance_change=0.0)  # fmt: skip

        def closure() -> Tensor:
            opt.zero_grad()
            loss = objective()
            loss.backward()
            history.append(loss.item())
            bar.update(1)
            return loss

        opt.step(closure)
    else:
        opt = torch.optim.Adam([image], lr=0.02)
        for _ in range(iterations):
            opt.zero_grad()
            loss = objective()
            loss.backward()
            opt.step()
            history.append(loss.item())
            bar.update(1)
    bar.close()
    return image.detach().clamp(0, 1), history
