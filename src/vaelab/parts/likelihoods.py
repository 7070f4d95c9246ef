"""Likelihoods p(x|z) of the decoder's outputs: ``nll`` per image in nats (summed over pixels) and ``mean``,
the image in [0, 1] that pictures show."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .posteriors import LOG_2PI


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) for pixels x in [0, 1] under Bernoulli(sigmoid(logits)), summed per image, (B,)."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def bernoulli_nll_draws(logits: torch.Tensor, x: torch.Tensor, k: int) -> torch.Tensor:
    """``bernoulli_nll`` of k logits per image, (k * B,): ``logits`` (k * B, C, H, W) draw-major, x (B, C, H, W).
    As sum_i softplus(l_i) - x . l per row, the Bernoulli NLL's identity (exact for x in [0, 1]), in float32: the
    dot product reads each image once for its k rows, where the BCE of repeated images wrote k copies of it and ran
    the log-sigmoid's extra passes (the IW-NLL 1.24x faster in bf16). Outside any autocast, which would run the dot
    product in bf16 and round its sum of hundreds of nats to bf16's 1."""
    with torch.autocast(logits.device.type, enabled=False):
        logits = logits.float().view(k, len(x), -1)
        dot = torch.einsum("kbp,bp->kb", logits, x.flatten(1).float())
        return (F.softplus(logits).sum(-1) - dot).flatten()


def gaussian_nll(mean: torch.Tensor, x: torch.Tensor, std: float) -> torch.Tensor:
    """-log N(x; mean, std^2 I) summed per image, (B,): sum(0.5 * ((x - mean) / std)^2 + log std + 0.5 log 2pi)."""
    squared = (x - mean).pow(2).flatten(1).sum(1)
    return 0.5 * squared / std**2 + x[0].numel() * (math.log(std) + 0.5 * LOG_2PI)


class Likelihood:
    """What every likelihood shares: ``nll_draws``, the NLL of several decodings of each image."""

    def nll(self, decoded: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def nll_draws(self, decoded: torch.Tensor, x: torch.Tensor, k: int) -> torch.Tensor:
        """-log p(x|z) of k decodings of each image, (k * B,): ``decoded`` (k * B, C, H, W) draw-major, x
        (B, C, H, W)."""
        return self.nll(decoded, x.repeat(k, *([1] * (x.ndim - 1))))


class BernoulliLikelihood(Likelihood):
    """p(x|z) = Bernoulli(sigmoid(logits)) per pixel: for binarised data (or grey levels as soft targets)."""

    name = "bernoulli"

    def nll(self, decoded: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return bernoulli_nll(decoded, x)

    def nll_draws(self, decoded: torch.Tensor, x: torch.Tensor, k: int) -> torch.Tensor:
        return bernoulli_nll_draws(decoded, x, k)

    def mean(self, decoded: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(decoded)


class GaussianLikelihood(Likelihood):
    """p(x|z) = N(sigmoid(out), std^2 I) with a fixed, stated std; its NLL compares only to other Gaussian NLLs."""

    name = "gaussian"

    def __init__(self, std: float):
        self.std = std

    def nll(self, decoded: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return gaussian_nll(torch.sigmoid(decoded), x, self.std)

    def mean(self, decoded: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(decoded)


def raster_mask(size: int) -> torch.Tensor:
    """PixelCNN's mask A (van den Oord et al. 2016) of a size x size kernel, (size, size): 1 on the pixels before
    the centre in raster order (the rows above it, and its row's pixels to its left), 0 on the centre and after."""
    mask = torch.ones(size, size)
    mask[size // 2, size // 2 :] = 0
    mask[size // 2 + 1 :] = 0
    return mask


class ContextBernoulli(nn.Module, Likelihood):
    """p(x|z) = prod_i Bernoulli(x_i; sigmoid(l_i(z) + c_i(x_<i))): the decoder's logits l plus a linear read-out
    c of the pixels before pixel i in raster order within a size x size window around it, every channel of them
    (a convolution under PixelCNN's mask A, van den Oord et al. 2016). An autoregressive decoder with a small
    receptive field, as in the Variational Lossy Autoencoder (Chen et al. 2017): the window models the local
    texture that the code leaves out. The read-out starts at zero, so training starts from the factorised
    Bernoulli. Its density is exact (the pixels' conditionals in raster order); its mean image is not in closed
    form: ``mean`` gives the mean-field pass."""

    name = "bernoulli"
    block = 32  # output columns per row of the banded matmul

    def __init__(self, channels: int, size: int):
        super().__init__()
        self.size = size
        self.weight = nn.Parameter(torch.zeros(channels, channels, size, size))  # zeros: no draw from the RNG
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("mask", raster_mask(size), persistent=False)

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """c(x_<i) at every pixel, (B, C, H, W) float32: pixels outside the image read as 0. The masked
        convolution as one matmul (2.1x faster than F.conv2d, its weight gradient included, on a CPU: a
        convolution this thin is a poor fit for its kernels): each row of ``block`` output pixels reads the image
        row with the p = size // 2 rows above it (the kernel's rows below its centre are masked) through
        ``banded``, the kernel laid along the row; rows wider than ``block`` are cut into blocks, so that the
        band's density, size / (block + size - 1), does not fall with the image's width. In float32, outside any
        autocast."""
        with torch.autocast(x.device.type, enabled=False):
            b, c, h, w = x.shape
            p, block = self.size // 2, min(w, self.block)
            blocks = -(-w // block)
            padded = F.pad(x.float(), (p, p + blocks * block - w, p, 0))  # zeros above, on the left, on the right
            rows = padded.unfold(2, p + 1, 1).unfold(3, block + 2 * p, block)  # (B, C, H, blocks, p + 1, block + 2p)
            rows = rows.permute(0, 2, 3, 1, 4, 5).reshape(b * h * blocks, -1)  # one copy, (B H blocks, K)
            out = (rows @ self.banded(block)).view(b, h, blocks, c, block).permute(0, 3, 1, 2, 4)
            return out.reshape(b, c, h, blocks * block)[..., :w] + self.bias.view(1, c, 1, 1)

    def banded(self, width: int) -> torch.Tensor:
        """The masked kernel's rows at and above its centre as a matrix (C (p + 1) (width + 2p), C width): entry
        ((i, dy, u), (o, v)) is weight[o, i, dy, u - v] where 0 <= u - v < size (u a column of the padded row,
        v an output column), else 0."""
        p = self.size // 2
        kernel = (self.weight * self.mask)[:, :, : p + 1].permute(1, 2, 0, 3)  # (C_in, p + 1, C_out, size)
        columns = torch.arange(width + 2 * p, device=kernel.device)
        offset = columns.view(-1, 1) - columns[:width]  # u - v, (width + 2p, width)
        inside = (offset >= 0) & (offset < self.size)
        band = kernel[..., offset.clamp(0, self.size - 1)] * inside  # (C_in, p + 1, C_out, width + 2p, width)
        return band.permute(0, 1, 3, 2, 4).reshape(-1, kernel.shape[2] * width)

    def nll(self, decoded: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return bernoulli_nll(decoded.float() + self.context(x), x)

    def nll_draws(self, decoded: torch.Tensor, x: torch.Tensor, k: int) -> torch.Tensor:
        """As ``nll`` of x repeated k times, the context read once per image (it does not depend on z)."""
        logits = decoded.float().unflatten(0, (k, len(x))) + self.context(x)  # (k, B, C, H, W)
        return bernoulli_nll_draws(logits.flatten(0, 1), x, k)

    @torch.no_grad()
    def mean(self, decoded: torch.Tensor) -> torch.Tensor:
        """The mean-field image, (B, C, H, W) in [0, 1]: pixel by pixel in raster order, m_i = sigmoid(l_i +
        c_i(m_<i)), the context read from the probabilities before i (what z gives where the window reads
        nothing; an approximation of E[x_i] where it matters). A loop over the H x W pixels, each step batched."""
        b, c, h, w = decoded.shape
        pad = self.size // 2
        weight = (self.weight * self.mask).float()
        canvas = decoded.new_zeros(b, c, h + 2 * pad, w + 2 * pad, dtype=torch.float32)
        for row in range(h):
            for col in range(w):
                window = canvas[:, :, row : row + self.size, col : col + self.size]  # (B, C, size, size)
                context = torch.einsum("bcij,ocij->bo", window, weight) + self.bias
                canvas[:, :, row + pad, col + pad] = torch.sigmoid(decoded[:, :, row, col].float() + context)
        return canvas[:, :, pad : pad + h, pad : pad + w].to(decoded.dtype)


def make_likelihood(
    name: str, gaussian_std: float, pixel_context: int = 0, channels: int = 1
) -> BernoulliLikelihood | GaussianLikelihood | ContextBernoulli:
    """The likelihood named in the model config; with ``pixel_context`` k > 0, the Bernoulli reads a k x k window
    of the pixels before each pixel (``ContextBernoulli``)."""
    if name == "gaussian":
        return GaussianLikelihood(gaussian_std)
    return ContextBernoulli(channels, pixel_context) if pixel_context else BernoulliLikelihood()
