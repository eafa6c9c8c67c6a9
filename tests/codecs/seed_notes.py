"""The seed notes' heatmap code (../shared/seed/000_0aceef8533084b33.txt), verbatim but for
formatting: the baseline that tests compare :class:`keypointer.codecs.HeatmapCodec` against and that
``benchmarks/codecs.py`` times. keypointer never uses it: integer centres only, overlapping
keypoints overwrite each other, and it is a Python double loop per kernel."""

import numpy as np


def notes_gauss_kernel(sigma, kernel_sz=None):
    if kernel_sz is None:
        stride = 3 * sigma
        kernel_sz = 2 * stride + 1
    kernel = np.zeros((kernel_sz, kernel_sz))
    center = kernel_sz // 2
    for i in range(kernel_sz):
        for j in range(kernel_sz):
            x, y = i - center, j - center
            kernel[i, j] = np.exp(-(x**2 + y**2) / (2 * sigma**2))
    kernel = kernel / kernel.max()
    return kernel


def notes_gauss_heatmap(width, height, cx, cy, sigma, kernel_sz=None):
    if kernel_sz is None:
        stride = 3 * sigma
        kernel_sz = 2 * stride + 1
    else:
        stride = kernel_sz // 2
    heatmap_padding = np.zeros((height + stride * 2, width + stride * 2))
    kernel = notes_gauss_kernel(sigma, kernel_sz)
    heatmap_padding[cy : cy + 2 * stride + 1, cx : cx + 2 * stride + 1] = kernel
    heatmap = heatmap_padding[stride : stride + height, stride : stride + width]
    return heatmap


def notes_all_kps_gauss_heatmap(width, height, kps, sigma, kernel_sz=None):
    if kernel_sz is None:
        stride = 3 * sigma
        kernel_sz = 2 * stride + 1
    else:
        stride = kernel_sz // 2
    heatmap_padding = np.zeros((height + stride * 2, width + stride * 2))
    kernel = notes_gauss_kernel(sigma, kernel_sz)
    for i in range(kps.shape[0]):
        cx, cy = kps[i, 0], kps[i, 1]
        heatmap_padding[cy : cy + 2 * stride + 1, cx : cx + 2 * stride + 1] = kernel
    heatmap = heatmap_padding[stride : stride + height, stride : stride + width]
    return heatmap
