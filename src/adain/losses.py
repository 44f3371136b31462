"""The paper's losses (Huang & Belongie, Sec. 5), shared by training, evaluation and the Gatys baseline.

With t = AdaIN(f(c), f(s)) and the output g(t):
    L_c = MSE(f(g(t)), t)                                                        at relu4_1
    L_s = sum_i MSE(mu(phi_i(g(t))), mu(phi_i(s))) + MSE(sigma(.), sigma(.))      relu1_1..relu4_1
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .decoder_match import layer_map, move, relu_channels
from .features import STYLE_WIDTH, style_stats_of
from .nets import (
    Decoder,
    Encoder,
    Stats,
    adain_stats,
    feedback_targets,
    fuse_upsampling,
    mean_std,
    run_decoder,
    taps,
)
from .winograd import accelerate

ContentTarget = Literal["t", "fc"]


def style_loss(output_taps: list[Tensor], style_taps: list[Tensor]) -> Tensor:
    """Sum over layers of the MSE between channel means plus the MSE between channel stds."""
    return style_loss_to(output_taps, [mean_std(ref) for ref in style_taps])


def style_loss_to(
    output_taps: list[Tensor], style_stats: list[Stats], layer_weights: Sequence[float] = ()
) -> Tensor:
    """``style_loss`` against the styles' statistics given (each tap's (mean, std), (N, C, 1, 1)),
    each tap's two terms times its ``layer_weights`` entry where given (a training recipe's lever;
    the paper's and the evaluation's loss weighs the taps alike)."""
    return sum_of_terms(style_loss_terms(output_taps, style_stats), layer_weights)


def sum_of_terms(terms: list[tuple[Tensor, Tensor]], layer_weights: Sequence[float] = ()) -> Tensor:
    """The style loss from its terms, summed in one fixed order (fp32 sums depend on it)."""
    weights = layer_weights or [1.0] * len(terms)
    if len(weights) != len(terms):
        raise ValueError(f"{len(weights)} layer weights for {len(terms)} style taps")
    total = terms[0][0].new_zeros((), dtype=torch.float32)
    for (mean_term, std_term), weight in zip(terms, weights, strict=True):
        total = total + (mean_term + std_term if weight == 1.0 else weight * (mean_term + std_term))
    return total


def style_loss_terms(output_taps: list[Tensor], style_stats: list[Stats]) -> list[tuple[Tensor, Tensor]]:
    """The style loss's terms per tap, relu1_1 first: (MSE of the channel means, MSE of the stds).
    Their sum is the style loss; apart, they say at which depth, and whether in level (mean) or in
    contrast (std), an output misses its style."""
    terms = []
    for out, (ref_mean, ref_std) in zip(output_taps, style_stats, strict=True):
        out_mean, out_std = mean_std(out)
        terms.append((F.mse_loss(out_mean, ref_mean), F.mse_loss(out_std, ref_std)))
    return terms


def content_loss(output_feat: Tensor, target: Tensor) -> Tensor:
    return F.mse_loss(output_feat.float(), target.float())


def decoder_match_loss(made: list[Stats], targets: list[Stats]) -> Tensor:
    """The style loss's form on the decoder's own ReLUs, relative: at each chosen ReLU, the MSE
    between the channel means of the activations ``made`` and the ``targets``, plus the MSE between
    the stds, over the targets' mean square (means and stds alike); each target (mean, std) is
    (B, C, 1, 1), as ``made``'s, one per chosen ReLU. The ReLUs' scales
    differ 180-fold (the mean square of the shipped decoder's statistics: 2.4 at ReLU 0, 0.013 at
    ReLU 6, at 512 px) and their relative gaps are alike (1-7 % at every ReLU;
    ``scripts/decoder_layer_gap.py``), so relative errors let each ReLU weigh the same."""
    total = made[0][0].new_zeros((), dtype=torch.float32)
    for (mean, std), (target_mean, target_std) in zip(made, targets, strict=True):
        error = F.mse_loss(mean.float(), target_mean) + F.mse_loss(std.float(), target_std)
        energy = torch.cat([target_mean.flatten(), target_std.flatten()]).square().mean()
        total = total + error / energy.clamp_min(1e-12)
    return total


class Losses(NamedTuple):
    """A batch's losses: the paper's two, and the decoder match's (zero unless it is asked for)."""

    content: Tensor
    style: Tensor
    decoder_match: Tensor


class _ClampedBack(torch.autograd.Function):
    """Clamp to [0, 1]; backward, a pixel beyond the range gets the gradient only where it leads
    back into the range."""

    @staticmethod
    def forward(ctx, image: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(image)
        return image.clamp(0, 1)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (image,) = ctx.saved_tensors
        # a descent step moves a pixel by -grad: above 1 only a positive gradient brings it down
        outward = ((image > 1) & (grad < 0)) | ((image < 0) & (grad > 0))
        return grad.masked_fill(outward, 0)


def clamped(image: Tensor) -> Tensor:
    """``image`` clamped to [0, 1], with a gradient that brings the pixels beyond the range back.

    The decoder's outputs leave [0, 1] (about 7 % of the shipped decoder's pixels at 512²), and
    every saved or evaluated image is clamped, so a loss on the raw output measures an image no one
    sees. A plain clamp gives the pixels beyond the range no gradient, so nothing brings them back;
    passing the gradient straight through lets them drift further out wherever the loss asks for
    more than the range holds, the decoder's weights moved for pixels that cannot change. So a pixel
    beyond the range takes its gradient only when the step leads back in."""
    return _ClampedBack.apply(image)


class AdaINLoss(torch.nn.Module):
    """Decoder + frozen encoder, computing the paper's content and style losses for a batch.

    ``winograd`` runs the wide 3x3 convs of both networks, forward and backward, through the
    CPU's Winograd kernels (``winograd.py``); the parameters are the same either way.
    ``style_layer_weights``, one per tap (relu1_1 first), weigh the style loss's terms; empty: all 1.
    ``clamp_output`` measures both losses on the output clamped to [0, 1], the image as it is saved
    and evaluated (``clamped``).
    ``teacher``, a frozen decoder, replaces the content target by the relu4_1 features of its
    two-pass output (``Stylizer``'s ``feedback`` option): a first pass at full strength, its miss
    measured, a second from targets moved by ``teacher_feedback`` of it at AdaIN strength
    ``teacher_alpha``: what one pass should learn to make.
    ``match_layers``, decoder ReLUs (``decoder_match.RELU_SCALE``'s numbering), are measured while
    the output is decoded, for ``decoder_match_loss`` against targets that cached style batches
    carry beyond their first ``STYLE_WIDTH`` columns: what ``adain stylize --decoder-match`` moves
    the activations towards, learnt so that one plain pass paints it. With ``match_share`` the
    same targets are not a loss but the match itself, switched on while training: each chosen
    ReLU's activations move that share of the way to them (``decoder_match.move``, with the
    gradient through the activations' own statistics), so the other layers learn to paint from
    matched activations.
    """

    def __init__(
        self,
        encoder: Encoder,
        decoder: Decoder,
        content_target: ContentTarget = "t",
        winograd: bool = False,
        style_layer_weights: Sequence[float] = (),
        clamp_output: bool = False,
        teacher: Decoder | None = None,
        teacher_feedback: float = 0.5,
        teacher_alpha: float = 1.0,
        match_layers: Sequence[int] = (),
        match_share: float = 0.0,
    ) -> None:
        super().__init__()
        self.match_layers, self.match_share = tuple(match_layers), match_share
        self.style_layer_weights = tuple(style_layer_weights)
        self.clamp_output = clamp_output
        self.encoder = encoder.eval().requires_grad_(False)
        self.decoder = decoder
        self.content_target = content_target
        fused = fuse_upsampling(decoder)  # the same function with fewer multiply-adds
        self.encode = accelerate(self.encoder) if winograd else self.encoder
        self.decode = accelerate(fused) if winograd else fused
        self.teacher = None if teacher is None else teacher.eval().requires_grad_(False)
        self.teacher_feedback, self.teacher_alpha = teacher_feedback, teacher_alpha
        if teacher is not None:
            taught = fuse_upsampling(teacher)
            self.teacher_decode = accelerate(taught) if winograd else taught

    def forward(self, content: Tensor, style: Tensor, cached: bool = False) -> Losses:
        """The losses of a batch of content and style crops; with ``cached``, of content relu4_1
        features and (B, 2, 960) style statistics from the feature cache, or (B, 2, 960 + D) with
        the decoder match's targets after them."""
        decoder_targets = None
        with torch.no_grad():
            if cached:  # the cache keeps features in bf16; fp32 training (no autocast) needs them in fp32
                if style.shape[-1] > STYLE_WIDTH:
                    style, decoder_targets = style[..., :STYLE_WIDTH], style[..., STYLE_WIDTH:]
                content_feat, style_stats = content.float(), style_stats_of(style)
            else:
                content_feat, style_stats = (
                    self.encode(content),
                    [mean_std(t) for t in taps(self.encode, style)],
                )
            t = adain_stats(content_feat, *style_stats[-1])
            target = t if self.content_target == "t" else content_feat
            if self.teacher is not None:
                target = self.taught(content_feat, t, style_stats[-1])
        made: dict[int, Stats] = {}
        wanted = self._per_layer(decoder_targets)

        def at_relu(k: int, x: Tensor) -> Tensor:
            if k not in wanted:
                return x
            if self.match_share:
                return move(x, [layer_map(mean_std(x), wanted[k])], self.match_share, None)
            made[k] = mean_std(x)
            return x

        output = run_decoder(self.decode, t, at_relu) if wanted else self.decode(t)
        output_taps = taps(self.encode, clamped(output) if self.clamp_output else output)
        style = style_loss_to(output_taps, style_stats, self.style_layer_weights)
        match = (
            decoder_match_loss([made[k] for k in self.match_layers], [wanted[k] for k in self.match_layers])
            if made
            else style.new_zeros(())
        )
        return Losses(content_loss(output_taps[-1], target), style, match)

    def _per_layer(self, targets: Tensor | None) -> dict[int, Stats]:
        """The cached decoder targets (B, 2, D), the chosen ReLUs' means and stds laid end to end
        (``features.decoder_styles``), as each one's (mean, std), (B, C, 1, 1), in fp32."""
        if targets is None or not self.match_layers:
            return {}
        channels = relu_channels(self.decoder)
        widths = [channels[k] for k in self.match_layers]
        parts = targets.float().split(widths, dim=2)
        return {
            k: (part[:, 0, :, None, None], part[:, 1, :, None, None])
            for k, part in zip(self.match_layers, parts, strict=True)
        }

    def taught(self, content_feat: Tensor, t: Tensor, style: Stats) -> Tensor:
        """relu4_1 of the teacher's two-pass output for AdaIN output ``t`` (content features and the
        style's relu4_1 statistics given), the images clamped to [0, 1] as saved."""
        made = mean_std(self.encode(self.teacher_decode(t).clamp(0, 1)))
        moved = adain_stats(content_feat, *feedback_targets(style, made, self.teacher_feedback))
        mixed = self.teacher_alpha * moved + (1 - self.teacher_alpha) * content_feat
        return self.encode(self.teacher_decode(mixed).clamp(0, 1))
