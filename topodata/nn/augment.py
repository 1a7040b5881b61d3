"""Batched, on-device data augmentation drawn from an explicit ``torch.Generator``.

Hand-written rather than torchvision.transforms.v2 because those draw one random crop per call
from the global RNG: here a whole batch gets per-sample crops and flips in a few tensor ops,
on the device the data already lives on, with a generator the caller owns (as airbench does).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._validation import TopodataInputError, check_options

__all__ = ["resolve_augment", "crop_padding", "random_crop", "random_flip", "augment_batch"]


def crop_padding(height: int, width: int) -> int:
    """Padding of the random crop: 1/8 of the side (4 px for 32x32 CIFAR as usual, 3 for 28x28, 1 for 8x8)."""
    return max(1, min(height, width) // 8)


def resolve_augment(augment: str, x_shape: tuple[int, ...]) -> str:
    """Turn ``augment`` into 'none', 'crop' or 'crop-flip' for inputs of shape ``x_shape``.

    ``'auto'`` means ``'crop'`` for images (N, C, H, W) at least 8 px wide and ``'none'`` for anything
    else; flips are never automatic because mirroring is wrong for digits (pass
    ``augment=dataset.augment`` to get them where they make sense).
    """
    check_options(augment, "augment", ("auto", "none", "crop", "crop-flip"))
    is_image = len(x_shape) == 4 and min(x_shape[2:]) >= 8
    if augment == "auto":
        return "crop" if is_image else "none"
    if augment != "none" and len(x_shape) != 4:
        raise TopodataInputError(
            f"augment={augment!r} needs image inputs (N, C, H, W); got shape {tuple(x_shape)}. "
            "Use augment='none' for feature vectors"
        )
    return augment


def random_crop(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``pad`` and cut a random ``H x W`` window per sample (one gather, no loop)."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator, device=generator.device)
    dx = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator, device=generator.device)
    rows = (dy + torch.arange(h, device=x.device)).to(x.device)  # (n, h)
    cols = (dx + torch.arange(w, device=x.device)).to(x.device)  # (n, w)
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous()


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each sample left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], generator=generator, device=generator.device).to(x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def augment_batch(x: torch.Tensor, mode: str, generator: torch.Generator) -> torch.Tensor:
    """Apply a resolved ``mode`` ('none', 'crop', 'crop-flip') to a batch."""
    if mode == "none":
        return x
    x = random_crop(x, crop_padding(x.shape[2], x.shape[3]), generator)
    if mode == "crop-flip":
        x = random_flip(x, generator)
    return x
