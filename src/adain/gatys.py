"""The optimisation baseline of the paper's comparisons (Gatys et al., 2016): the output image itself
is optimised, starting from the content, to lower

    content_weight * MSE(f(x), f(content))  at relu4_1
  + style_weight * sum_i [MSE(mu(phi_i(x)), mu(phi_i(s))) + MSE(sigma(phi_i(x)), sigma(phi_i(s)))]

with the same normalised VGG and the same losses as AdaIN's training and evaluation, so the two
methods are compared on the objective both aim at. Slow by nature: every step is a forward and a
backward pass through the encoder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from .defaults import POLISH_STYLE_WEIGHT
from .errors import Cancelled
from .losses import content_loss, style_loss, style_loss_to
from .nets import Stats, blend, taps


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


# Adam's rate on pixels in [0, 1]: a step moves a pixel by up to about 2.5 levels of 255, so a few
# steps change the grain and not the picture (README, "Polish", measures what they do)
POLISH_LR = 0.01


def polish(
    encoder: nn.Module,
    image: Tensor,
    content_feat: Tensor,
    style_stats: Sequence[Stats],
    steps: int,
    style_weight: float = POLISH_STYLE_WEIGHT,
    cancelled: Callable[[], bool] | None = None,
    lr: float = POLISH_LR,
    dtype: torch.dtype | None = None,
    progress: bool = False,
) -> Tensor:
    """``image`` (N, 3, H, W) in [0, 1], AdaIN's output, after ``steps`` Adam steps on its pixels
    towards the objective of ``gatys`` (relu4_1 features ``content_feat`` of the content, each tap's
    (mean, std) ``style_stats``, the style's loss weighed by ``style_weight``), kept in [0, 1] after
    each step; ``lr`` is Adam's rate, about the most a step moves a pixel; ``dtype``: the encoder's
    arithmetic after relu1_1 (``nets.taps``), the losses in float32. Of the images the steps
    pass through, the one lowest in that objective (the batch's as a whole) is returned, so polish
    never makes an image worse by its own measure: each Adam step moves every pixel by about the
    rate however small its gradient, and overshoots a style whose statistics are already near.
    ``progress``: a bar over the steps (each a few seconds on a large image on a CPU).

    A few steps from AdaIN's output instead of hundreds from the content: the decoder has laid out
    the strokes, the steps add the fine grain and contrast its statistics miss. Each step is a
    forward and a backward pass through the encoder, about as long as a single pass of the pipeline
    (0.9-1.3x at 512-1024², ``benchmarks/polish.py``).
    """
    # the caller may be under inference mode, whose tensors autograd cannot save: copies made
    # outside it are plain tensors
    with torch.inference_mode(False), torch.enable_grad():
        content_feat = content_feat.detach().clone()
        style_stats = [(mean.detach().clone(), std.detach().clone()) for mean, std in style_stats]
        pixels = image.detach().clone(memory_format=torch.contiguous_format).clamp_(0, 1).requires_grad_(True)
        encoder.requires_grad_(False)
        if steps == 0:
            return pixels.detach()
        opt = torch.optim.Adam([pixels], lr=lr)
        best_loss, best = float("inf"), pixels.detach().clone()  # a NaN loss keeps the start
        from tqdm import tqdm

        bar = tqdm(
            total=steps, desc="polish", unit="step", disable=not progress, leave=False, dynamic_ncols=True
        )
        with bar:
            for step in range(steps + 1):
                if cancelled is not None and cancelled():
                    raise Cancelled("stopped: the work was cancelled")
                scoring_only = step == steps  # the last step's image is scored, not stepped from
                with torch.set_grad_enabled(not scoring_only):
                    feats = taps(encoder, pixels, dtype)
                    loss = content_loss(feats[-1], content_feat) + style_weight * style_loss_to(
                        feats, style_stats
                    )
                if (value := loss.item()) < best_loss:
                    best_loss, best = value, pixels.detach().clone()
                if scoring_only:
                    break
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():
                    pixels.clamp_(0, 1)
                bar.update(1)
        return best


def polish_targets(
    styles: Sequence[Sequence[Stats]], weights: Sequence[float], alpha: float, content: Sequence[Stats]
) -> list[Stats]:
    """Each tap's (mean, std) for ``polish``: the styles' statistics (``styles[i]``, one per tap)
    blended by ``weights`` (summing to 1) as AdaIN blends them, moved towards the content's own
    (``content``, one per tap) by 1 - ``alpha``."""
    targets = []
    for layer, (own_mean, own_std) in enumerate(content):
        mean, std = blend([style[layer] for style in styles], weights)
        targets.append((alpha * mean + (1 - alpha) * own_mean, alpha * std + (1 - alpha) * own_std))
    return targets
