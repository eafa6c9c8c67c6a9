"""Instance centres for the locator: COCO boxes <-> a centre heatmap with size regression
(CenterNet, "Objects as Points", Zhou et al. 2019), on the whole image at low resolution.

Coordinates follow the package convention: (x, y) in input pixels, pixel centres at integers.
A COCO box (x, y, w, h) has its edges on pixel edges, so its centre is (x + w/2 - 0.5,
y + h/2 - 0.5). Heatmap pixel (i, j) covers the ``stride`` x ``stride`` input pixels starting
at (i * stride, j * stride); its centre is input (i * stride + (stride - 1) / 2, ...), so an
input coordinate ``c`` is heatmap coordinate ``(c + 0.5) / stride - 0.5``.

Targets (one image): a heatmap (1, h, w) with one Gaussian per box at the exact sub-pixel
centre (max where they overlap), a size map (2, h, w) and a mask (1, h, w) that is 1 at the
pixel holding each box's centre (the focal loss's positives) and weighs the size loss.

Sizes are ``log(w / stride), log(h / stride)``, not pixels: figures in one image differ in size
by 10x or more, and an L1 loss on the log is the relative error, so small and large instances
weigh the same and the loss is O(1) without CenterNet's 0.1 size weight; ``exp`` keeps decoded
sizes positive.

Decoding: 3x3 max-pool peaks, top-k, a sub-pixel step from a 3-point parabola through the log
of the heatmap along x and y (exact for a Gaussian of any sigma, since its log is a parabola),
the size at the peak pixel, then a score threshold. :meth:`CenterCodec.decode_topk` is pure
tensor ops with a fixed k, so a model followed by it exports to ONNX; the threshold
(:func:`select`) is the data-dependent part that stays outside the graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.ops import nms

from keypointer.codecs.common import TINY, ArrayLike, as_float
from keypointer.config import LOCATOR_SCORE_THRESHOLD
from keypointer.errors import ConfigError

REGION_MAX = 0.99  # size weights around a centre stay below the centre pixel's 1
MIN_SIGMA = 0.61
"""Smallest Gaussian sigma, heatmap px: the pixel holding a centre keeps at least half the peak
(exp(-0.25 / sigma^2) >= 0.5 at a pixel corner), wherever in that pixel the centre falls."""


def gaussian_radius(w: torch.Tensor, h: torch.Tensor, min_overlap: float = 0.7) -> torch.Tensor:
    """CenterNet's Gaussian radius for boxes of size (w, h) (any unit; the radius is in it).

    The smallest corner shift at which a box of this size still overlaps the true one by
    ``min_overlap`` IoU, over CornerNet's three cases. Written as CenterNet's
    ``gaussian_radius`` (xingyizhou/CenterNet, src/lib/utils/image.py), whose roots divide by 2
    where the quadratic formula divides by 2a; its detectors were trained with these radii
    (about 0.27 x the side of a square box, i.e. sigma ~ 0.09 x side, as TTFNet's 0.54 / 6).
    """
    b1 = h + w
    c1 = w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + torch.sqrt((b1 * b1 - 4 * c1).clamp(min=0))) / 2
    b2 = 2 * (h + w)
    c2 = (1 - min_overlap) * w * h
    r2 = (b2 + torch.sqrt((b2 * b2 - 16 * c2).clamp(min=0))) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (h + w)
    c3 = (min_overlap - 1) * w * h
    r3 = (b3 + torch.sqrt((b3 * b3 - 4 * a3 * c3).clamp(min=0))) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


@dataclass(frozen=True)
class CenterCodec:
    """COCO boxes (N, 4) in input pixels <-> centre heatmap, log-size map and mask.

    ``input_size`` is (width, height) in pixels; the maps are ``input // stride``.
    ``min_overlap`` sets the Gaussian radius (:func:`gaussian_radius`); sigma is
    ``(2 radius + 1) / 6`` heatmap px, as CenterNet draws it, and at least :data:`MIN_SIGMA`.
    ``size_region`` 0: sizes at the centre pixels only (CenterNet); above 0, sizes also
    wherever the nearest box's Gaussian is at least this, weighted by its value (TTFNet's dense
    regression, "Training-Time-Friendly Network", Liu et al. 2020): many more samples per
    instance, and a peak a pixel or two off the centre still reads a trained size.
    """

    input_size: tuple[int, int]
    stride: int = 4
    min_overlap: float = 0.7
    size_region: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        if len(self.input_size) != 2:
            raise ConfigError("CenterCodec: input_size is (width, height)")
        if self.stride < 1 or min(self.input_size) < 2 * self.stride:
            raise ConfigError(
                f"CenterCodec: input {self.input_size} must be at least 2 strides "
                f"({self.stride} px) on each side"
            )
        if not 0 < self.min_overlap < 1:
            raise ConfigError(f"CenterCodec: min_overlap must be in (0, 1), got {self.min_overlap}")
        if not 0 <= self.size_region < 1:
            raise ConfigError(f"CenterCodec: size_region must be in [0, 1), got {self.size_region}")

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """(w, h) of the maps."""
        return self.input_size[0] // self.stride, self.input_size[1] // self.stride

    def to_heatmap(self, xy: ArrayLike) -> torch.Tensor:
        """Input px -> heatmap px (same shape)."""
        return (as_float(xy) + 0.5) / self.stride - 0.5

    def to_input(self, xy: ArrayLike) -> torch.Tensor:
        """Heatmap px -> input px (same shape)."""
        return (as_float(xy) + 0.5) * self.stride - 0.5

    def encode(self, boxes: ArrayLike) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """COCO boxes (N, 4) (x, y, w, h) in input px -> heatmap (1, h, w), size (2, h, w),
        mask (1, h, w), float32.

        ``mask`` weighs the size loss: exactly 1 at the pixel holding each centre (also the
        focal loss's positives: ``mask == 1``), with ``size_region`` the Gaussian's value,
        below 1, around it; 0 elsewhere. Boxes with a non-finite value, a side <= 0 or a
        centre off the map are left out. When two centres fall into one pixel, the smaller
        box owns its size (the larger one's centre is usually still visible around it in the
        heatmap, the smaller one's nowhere else).
        """
        (w, h), s = self.heatmap_size, float(self.stride)
        centre, wh, pix = self._usable(as_float(boxes).float().reshape(-1, 4))
        size = torch.zeros(2, h * w, device=centre.device)
        mask = torch.zeros(h * w, device=centre.device)
        if len(centre) == 0:
            return mask.view(1, h, w).clone(), size.view(2, h, w), mask.view(1, h, w)
        value, nearest = self._gaussians(centre, wh).flatten(1).max(0)
        log_wh = torch.log(wh.clamp(min=1.0 / s))
        if self.size_region > 0:  # sizes around the centres too, weighted by the Gaussian
            region = value >= self.size_region
            mask[region] = value[region].clamp(max=REGION_MAX)
            size[:, region] = log_wh[nearest[region]].T
        at, owner = _centre_owners(pix[:, 1] * w + pix[:, 0], wh.prod(1), h * w)
        mask[at] = 1.0
        size[:, at] = log_wh[owner].T
        return value.view(1, h, w), size.view(2, h, w), mask.view(1, h, w)

    def _usable(self, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Boxes (N, 4) -> of the usable ones: centres (M, 2) and sizes (M, 2) in heatmap px,
        and the pixels (M, 2) holding the centres. A centre exactly between two pixels is in
        the first (``ceil(c - 0.5)``), as the decoder keeps the first pixel of a plateau."""
        centre = self.to_heatmap(b[:, :2] + b[:, 2:] / 2 - 0.5)
        finite = torch.nan_to_num(centre, nan=-9.0, posinf=-9.0, neginf=-9.0)
        pix = torch.ceil(finite - 0.5).long()
        limit = torch.tensor(self.heatmap_size, device=b.device)
        valid = torch.isfinite(b).all(1) & (b[:, 2:] > 0).all(1)
        valid &= ((pix >= 0) & (pix < limit)).all(1)
        return centre[valid], b[valid, 2:] / float(self.stride), pix[valid]

    def _gaussians(self, centre: torch.Tensor, wh: torch.Tensor) -> torch.Tensor:
        """Each box's Gaussian, (N, h, w); separable, cut at 3 sigma per axis."""
        w, h = self.heatmap_size
        radius = gaussian_radius(wh[:, 0], wh[:, 1], self.min_overlap)
        sigma = ((2 * radius + 1) / 6).clamp(min=MIN_SIGMA).unsqueeze(1)  # (N, 1)

        def profile(c: torch.Tensor, n: int) -> torch.Tensor:
            d = torch.arange(n, device=c.device, dtype=c.dtype) - c.unsqueeze(1)
            g = torch.exp(-0.5 * (d / sigma) ** 2)
            return torch.where(d.abs() <= 3 * sigma, g, torch.zeros_like(g))

        gx, gy = profile(centre[:, 0], w), profile(centre[:, 1], h)
        return gy.unsqueeze(2) * gx.unsqueeze(1)

    def decode_topk(
        self, heatmap: ArrayLike, size: ArrayLike, k: int = 20, logits: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Heatmap (B, 1, h, w), size (B, 2, h, w) -> boxes (B, k', 4) COCO in input px and
        scores (B, k'), best first, k' = min(k, h * w).

        ``heatmap`` holds probabilities in [0, 1], or with ``logits`` the network's raw centre
        logits (decoded through ``logsigmoid``: exact where a sigmoid would round to 1). Pure
        tensor ops, no data-dependent branches: this part exports to ONNX.
        """
        hm, sz = as_float(heatmap), as_float(size)
        w, h = self.heatmap_size
        if hm.dim() != 4 or tuple(hm.shape[1:]) != (1, h, w):
            raise ValueError(f"heatmap must be (B, 1, {h}, {w}), got {tuple(hm.shape)}")
        if tuple(sz.shape) != (hm.shape[0], 2, h, w):
            raise ValueError(f"size must be ({hm.shape[0]}, 2, {h}, {w}), got {tuple(sz.shape)}")
        logp = F.logsigmoid(hm) if logits else torch.log(hm.clamp(min=TINY))
        # Non-peaks get distinct values far below any log-probability (scores exp(.) = 0), so
        # top-k has no ties to break and ONNX Runtime picks the same fillers as PyTorch.
        order = torch.arange(h * w, device=hm.device, dtype=logp.dtype).view(1, 1, h, w)
        floor = -1e4 - order
        candidates = torch.where(_peaks(logp), logp, floor).flatten(1)  # (B, h * w)
        top, idx = candidates.topk(min(k, h * w), dim=1)
        ix, iy = idx % w, torch.div(idx, w, rounding_mode="floor")
        flat = logp.flatten(1)
        dx = _vertex(flat, idx, ix, 1, w)
        dy = _vertex(flat, idx, iy, w, h)
        centre = self.to_input(torch.stack((ix + dx, iy + dy), -1))  # (B, k, 2)
        log_wh = sz.flatten(2).gather(2, idx.unsqueeze(1).expand(-1, 2, -1))  # (B, 2, k)
        wh = torch.exp(log_wh).transpose(1, 2) * float(self.stride)
        boxes = torch.cat((centre + 0.5 - wh / 2, wh), -1)
        return boxes, torch.exp(top)

    def decode(
        self,
        heatmap: ArrayLike,
        size: ArrayLike,
        k: int = 20,
        threshold: float = LOCATOR_SCORE_THRESHOLD,
        logits: bool = False,
        nms_iou: float | None = None,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """:meth:`decode_topk`, then :func:`select`: per image the boxes (M, 4) and scores
        (M,) above ``threshold`` (and box NMS at ``nms_iou`` when given)."""
        return select(*self.decode_topk(heatmap, size, k, logits), threshold, nms_iou)


def _centre_owners(
    flat: torch.Tensor, area: torch.Tensor, n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat centre pixels (M,) and box areas (M,) -> the distinct pixels (P,) and, for each,
    the box that owns it: the smallest of those centred there (deterministic, unlike an
    indexed assignment with repeated indices)."""
    order = torch.argsort(area, stable=True)  # smallest first
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=flat.device)
    winner = torch.full((n,), len(order), device=flat.device, dtype=torch.long)
    winner = winner.scatter_reduce(0, flat, rank, "amin")
    at = torch.nonzero(winner < len(order)).squeeze(1)
    return at, order[winner[at]]


def _peaks(z: torch.Tensor) -> torch.Tensor:
    """(B, 1, h, w) -> bool: local maxima of the 3x3 neighbourhood (CenterNet's max-pool NMS).

    A plateau (two equal neighbours, e.g. a centre exactly between two pixels) keeps only its
    first pixel in raster order: it must beat its earlier neighbours (up-left, up, up-right,
    left) strictly, so one instance never gives two peaks.
    """
    h, w = z.shape[-2:]
    keep = z >= F.max_pool2d(z, 3, stride=1, padding=1)
    p = F.pad(z, (1, 1, 1, 0), value=-1e30)  # z[y, x] is p[y + 1, x + 1]
    earlier = torch.maximum(
        torch.maximum(p[..., :h, :w], p[..., :h, 1 : w + 1]),
        torch.maximum(p[..., :h, 2:], p[..., 1:, :w]),
    )
    return keep & (z > earlier)


def _vertex(
    flat: torch.Tensor, idx: torch.Tensor, i: torch.Tensor, step: int, n: int
) -> torch.Tensor:
    """Sub-pixel offset of the peak along one axis: the vertex of the parabola through the log
    values at ``idx - step``, ``idx``, ``idx + step``. It lies within +-0.5 of the peak pixel
    (a local maximum); 0 at the map's edge, where a neighbour is missing."""
    last = flat.shape[1] - 1
    lo = flat.gather(1, (idx - step).clamp(0, last))
    mid = flat.gather(1, idx)
    hi = flat.gather(1, (idx + step).clamp(0, last))
    curve = lo - 2 * mid + hi
    ok = (i > 0) & (i < n - 1) & (curve < 0)
    safe = torch.where(ok, curve, -torch.ones_like(curve))
    offset = (0.5 * (lo - hi) / safe).clamp(-0.5, 0.5)
    return torch.where(ok, offset, torch.zeros_like(offset))


def select(
    boxes: torch.Tensor, scores: torch.Tensor, threshold: float, nms_iou: float | None = None
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Boxes (B, k, 4) and scores (B, k) -> per image (boxes (M, 4), scores (M,)) scoring at
    least ``threshold``, best first; with ``nms_iou`` also box NMS (torchvision's): a box
    overlapping a better one by more than that IoU is dropped (two peaks of one instance)."""
    out = []
    for b, s in zip(boxes, scores, strict=True):
        keep = s >= threshold
        b, s = b[keep], s[keep]
        if nms_iou is not None and len(b) > 1:
            kept = nms(torch.cat((b[:, :2], b[:, :2] + b[:, 2:]), 1).float(), s.float(), nms_iou)
            b, s = b[kept], s[kept]
        out.append((b, s))
    return out
