"""Temporal consistency for stylized video, guided by the optical flow of the input frames.

AdaIN paints every frame anew, so strokes boil from frame to frame. ``FlowBlend`` carries the
previous *result* along the motion of the *input* (backward optical flow, OpenCV's DIS) and
combines it with the fresh per-frame result wherever that motion is trusted:

    strokes (the result less its Gaussian blur, sigma 6 px): the carried ones, kept whole
    colours (the blur):  fresh + strength * (carried - fresh)

Blending the strokes too (out = fresh + s (carried - fresh)) was measured first: it averages
stroke patterns that do not line up, an average of them has less contrast than either, and the
style loss of the frames rose by 37-86 % (cutBunny, strengths 0.5-0.8). Carried whole, strokes
stick to the surfaces they were painted on; averaging only the colours costs no texture. Carried
forever, though, strokes stretch and blur with the motion (style loss +23.7 % after 48 frames of
sintel with the decoder shipped in session 12; boosting their contrast back made it worse), so each
cell of the picture takes fresh strokes once every ``renew`` frames, the cells staggered in time
and moving with the picture, and sooner where the motion deforms the picture (``stretch``): +9.4 %
there, at a warping error of 0.43x the plain one (by time alone +11.7 % at 0.39x;
``benchmarks/video_consistency.py``, ``--sweep`` for the trade-off of ``renew`` and ``stretch``).

``valid`` is 0 where a pixel has no reliable past: it left the frame, the forward and backward
flows disagree (occlusion, Sundaram et al. 2010), or the input colour does not follow the flow
(lighting changes, flow errors). Those pixels take the fresh result, so nothing ghosts or smears.
A frame where most pixels have no reliable past is a scene cut: the blend starts again from it.

The blend works on the output pixels, after the whole pipeline, so every control (alpha, several
styles, masks, colour preservation) and tiled frames work unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import AdainError


def _cv2():
    try:
        import cv2
    except ImportError:
        raise AdainError(
            "temporal consistency needs OpenCV: pip install 'adain[video]' (opencv-python-headless)"
        ) from None
    return cv2


def _gray(frame: np.ndarray) -> np.ndarray:
    cv2 = _cv2()
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs, ys


def warp(image: np.ndarray, flow: np.ndarray, interpolation: str = "linear") -> np.ndarray:
    """``image`` sampled at x + flow(x): the earlier frame brought onto the later one when
    ``flow`` is the backward flow (later -> earlier). "linear", "nearest" or "lanczos" (8x8): a
    result carried from frame to frame is resampled again at every frame, and eight bilinear
    resamplings at half-pixel offsets already blur a stylized frame's strokes enough to multiply
    its style loss by seven (Lanczos: +1 %)."""
    cv2 = _cv2()
    kinds = {"linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST, "lanczos": cv2.INTER_LANCZOS4}
    xs, ys = _grid(*flow.shape[:2])
    return cv2.remap(
        image, xs + flow[..., 0], ys + flow[..., 1], kinds[interpolation], borderMode=cv2.BORDER_REPLICATE
    )


def consistent(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Where the backward flow (later -> earlier) is trusted: it stays inside the frame and the
    forward flow (earlier -> later), read where it lands, brings it back (Sundaram et al. 2010:
    |b + f(x + b)|^2 <= 0.01 (|b|^2 + |f(x + b)|^2) + 0.5). A boolean (H, W) mask."""
    height, width = backward.shape[:2]
    xs, ys = _grid(height, width)
    tx, ty = xs + backward[..., 0], ys + backward[..., 1]
    inside = (tx >= 0) & (tx <= width - 1) & (ty >= 0) & (ty <= height - 1)
    forward_there = warp(forward, backward)
    loop = backward + forward_there
    bound = 0.01 * ((backward**2).sum(-1) + (forward_there**2).sum(-1)) + 0.5
    return inside & ((loop**2).sum(-1) <= bound)


class OpticalFlow:
    """Dense optical flow between two RGB frames (OpenCV's DIS, a maintained fast method)."""

    def __init__(self, preset: str = "medium") -> None:
        cv2 = _cv2()
        presets = {
            "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
            "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
        }
        if preset not in presets:
            raise AdainError(f"unknown optical-flow preset {preset!r} (use {', '.join(presets)})")
        self._dis = cv2.DISOpticalFlow_create(presets[preset])

    def __call__(self, source_gray: np.ndarray, target_gray: np.ndarray) -> np.ndarray:
        """(H, W, 2) float32: where each pixel of ``source_gray`` moved to in ``target_gray``."""
        return self._dis.calc(source_gray, target_gray, None)


@dataclass
class FlowBlend:
    """Blends each stylized frame with the previous result carried along the input's motion.

    strength: weight of the carried colours where the motion is trusted (closer to 1: steadier,
        slower to follow changes of light).
    renew: frames a stroke is carried before it is painted anew (0: never). Carried on and on,
        strokes stretch with the motion and lose the style's look (style loss +24.5 % after 48
        frames of sintel); each cell of the picture is renewed in its own frame of every
        ``renew``, so a few cells change at a time instead of the whole frame.
    stretch: how much sooner strokes are renewed where the motion deforms them. Each frame ages a
        stroke by 1 + stretch x renew x (the flow's local deformation there, the norm of its
        Jacobian), so with stretch 1 a stroke deformed by 100 % in all is renewed at once, and where
        the picture only moves, strokes live ``renew`` frames.
    cell: side of those cells, in pixels; the cells move with the picture.
    colour_tolerance: largest mean absolute difference (0-255) between an input pixel and its
        flow-carried predecessor for the pair to count as the same surface.
    cut_fraction: a frame with fewer trusted pixels than this is a scene cut (the blend restarts).
    """

    strength: float = 0.8
    renew: int = 20
    stretch: float = 0.25
    cell: int = 32
    colour_tolerance: float = 24.0
    cut_fraction: float = 0.5
    preset: str = "medium"

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength < 1.0:
            raise AdainError(f"temporal strength must be in [0, 1), got {self.strength}")
        if self.renew < 0 or self.cell < 1 or self.stretch < 0:
            raise AdainError(
                f"renew and stretch must be at least 0 and cell at least 1, got {self.renew}, {self.stretch}, {self.cell}"
            )
        self._flow = OpticalFlow(self.preset)
        self.cuts = 0
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next frame is taken as it is (a new scene, a new video)."""
        self._gray: np.ndarray | None = None
        self._input: np.ndarray | None = None
        self._output: np.ndarray | None = None
        self._age: np.ndarray | None = None

    def __call__(self, frame: np.ndarray, stylized: np.ndarray) -> np.ndarray:
        """The blended result for the input ``frame`` (H, W, 3 uint8 RGB) whose per-frame result is
        ``stylized`` (H, W, 3 float32, 0-255); frames in order."""
        gray = _gray(frame)
        out, age = stylized, None
        if self._gray is not None and self._gray.shape == gray.shape:
            backward, valid = self._trusted(gray, frame)
            if valid.mean() < self.cut_fraction:
                self.cuts += 1
            else:
                age = warp(self._age, backward, "nearest") + 1
                if self.stretch and self.renew:  # a per-frame cost only where it changes the age
                    age += self.stretch * self.renew * _deformation(backward)
                age[~valid] = 0
                kept = valid.copy()
                if self.renew:
                    kept &= age < self.renew
                    age[age >= self.renew] = 0
                carried = warp(self._output, backward, "lanczos")
                base, carried_base = _blur(stylized), _blur(carried)
                colours = self.strength * (carried_base - base) * _soften(valid)[..., None]
                strokes = (carried - carried_base - stylized + base) * _soften(kept)[..., None]
                out = stylized + colours + strokes
        self._gray, self._input, self._output = gray, frame, out
        self._age = self._staggered_ages(gray.shape) if age is None else age
        return out

    def _staggered_ages(self, shape: tuple[int, int]) -> np.ndarray:
        """Each cell's age at a fresh start, spread over the renewal period (seeded: reproducible)."""
        rows, cols = (-(-side // self.cell) for side in shape)
        ages = np.random.default_rng(0).integers(0, max(self.renew, 1), (rows, cols)).astype(np.float32)
        return np.kron(ages, np.ones((self.cell, self.cell), np.float32))[: shape[0], : shape[1]]

    def _trusted(self, gray: np.ndarray, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The backward flow to the previous frame and where it is trusted."""
        backward = self._flow(gray, self._gray)
        valid = consistent(backward, self._flow(self._gray, gray))
        carried_input = warp(self._input.astype(np.float32), backward)
        colour_error = np.abs(carried_input - frame.astype(np.float32)).mean(-1)
        return backward, valid & (colour_error <= self.colour_tolerance)


def _deformation(flow: np.ndarray) -> np.ndarray:
    """How much the motion deforms the picture around each pixel: the Frobenius norm of the flow's
    Jacobian (0 where it only moves), smoothed over a few pixels against the flow's noise."""
    cv2 = _cv2()
    # a 3x3 Sobel kernel sums 8 times the derivative
    parts = [cv2.Sobel(flow[..., c], cv2.CV_32F, dx, 1 - dx, ksize=3) / 8 for c in (0, 1) for dx in (0, 1)]
    return cv2.GaussianBlur(np.sqrt(sum(part**2 for part in parts)), (0, 0), 4)


def _blur(image: np.ndarray, sigma: float = 6.0) -> np.ndarray:
    return _cv2().GaussianBlur(image, (0, 0), sigma)


def _soften(mask: np.ndarray) -> np.ndarray:
    """The mask as weights with its untrusted parts grown by two pixels and edges feathered, so
    no seam shows where blended and fresh pixels meet."""
    cv2 = _cv2()
    eroded = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8))
    return cv2.GaussianBlur(eroded.astype(np.float32), (5, 5), 0)


def reference_flows(frames: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """For measuring: the backward flow of each consecutive pair of RGB frames and its
    non-occlusion mask, from Farneback's method, not the DIS flow the blend uses (a method is not
    judged by its own flow)."""
    cv2 = _cv2()
    gray = [_gray(f) for f in frames]

    def flow(a, b):
        return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 5, 15, 5, 7, 1.5, 0)

    backward = [flow(gray[t], gray[t - 1]) for t in range(1, len(gray))]
    masks = [consistent(b, flow(gray[t], gray[t + 1])) for t, b in enumerate(backward)]
    return backward, masks


def warping_error(
    outputs: list[np.ndarray], backward_flows: list[np.ndarray], masks: list[np.ndarray]
) -> float:
    """Lai et al. (ECCV 2018): the mean over frames of the mean squared difference (RGB in [0, 1])
    between output frame t and output frame t-1 warped to t, over the pixels of ``masks[t-1]``
    (non-occluded); ``backward_flows[t-1]`` and ``masks[t-1]`` belong to the pair (t-1, t)."""
    errors = []
    for t in range(1, len(outputs)):
        mask = masks[t - 1]
        if not mask.any():
            continue
        carried = warp(outputs[t - 1].astype(np.float32), backward_flows[t - 1])
        diff = ((outputs[t].astype(np.float32) - carried) / 255.0) ** 2
        errors.append(float(diff[mask].mean()))
    if not errors:
        raise AdainError("no frame pair has non-occluded pixels to measure")
    return float(np.mean(errors))


def camera_move(
    photo: np.ndarray,
    frames: int,
    size: tuple[int, int],
    shift: tuple[float, float] = (2.0, 1.0),
    zoom: float = 1.005,
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Footage with known motion, for measuring: a camera panning (``shift`` source pixels a
    frame) and zooming in (the window shrinking by ``zoom`` a frame) over a still ``photo``
    (H, W, 3 uint8). Returns the frames (``size`` = (width, height)), and for each pair (t-1, t)
    the true backward flow and the mask of pixels whose source was inside frame t-1."""
    cv2 = _cv2()
    width, height = size
    rows, cols = photo.shape[:2]
    first = min(cols / width, rows / height) * 0.8  # source pixels per output pixel at frame 0
    centre = np.array([cols / 2, rows / 2]) - np.array(shift) * frames / 2
    out_centre = np.array([(width - 1) / 2, (height - 1) / 2])
    xs, ys = _grid(height, width)
    offsets = np.stack([xs, ys], -1) - out_centre

    def window(t: int) -> tuple[np.ndarray, float]:
        return centre + np.array(shift) * t, first / zoom**t

    clip, flows, masks = [], [], []
    for t in range(frames):
        c, s = window(t)
        to_source = np.array([[s, 0, c[0] - s * out_centre[0]], [0, s, c[1] - s * out_centre[1]]])
        clip.append(cv2.warpAffine(photo, to_source, size, flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_REFLECT))  # fmt: skip
        if t:
            c0, s0 = window(t - 1)
            before = out_centre + (c + s * offsets - c0) / s0
            flow = (before - np.stack([xs, ys], -1)).astype(np.float32)
            inside = (before[..., 0] >= 0) & (before[..., 0] <= width - 1)
            inside &= (before[..., 1] >= 0) & (before[..., 1] <= height - 1)
            flows.append(flow)
            masks.append(inside)
    return clip, flows, masks
