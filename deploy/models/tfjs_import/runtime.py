"""TorchScript helpers called from generated models (compiled into model.pt by torch.jit.script).

Each reproduces the TF/TF.js semantics of one op where no single torch call does.
"""
from typing import List, Tuple

import torch


def gather_nd(params: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """TF GatherNd: indices [..., K] address the first K dims of params."""
    k = indices.size(-1)
    lead: List[int] = list(indices.shape[:-1])
    inner: List[int] = list(params.shape[k:])
    flat = indices.reshape(-1, k).to(torch.int64)
    linear = torch.zeros(flat.size(0), dtype=torch.int64, device=params.device)
    for j in range(k):
        linear = linear * params.size(j) + flat[:, j]
    rows = params.reshape([-1] + inner)
    return rows.index_select(0, linear).reshape(lead + inner)


def gather(params: torch.Tensor, indices: torch.Tensor, axis: int) -> torch.Tensor:
    """TF GatherV2 with batch_dims 0."""
    out_shape: List[int] = list(params.shape[:axis]) + list(indices.shape) + list(params.shape[axis + 1:])
    picked = params.index_select(axis, indices.reshape(-1).to(torch.int64))
    return picked.reshape(out_shape)


def top_k(x: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """TF.js TopK along the last axis: descending values, ties broken by the lower index.

    torch.topk does not promise an order among equal values, so the k-th value's ties are
    resolved explicitly: keep everything above the threshold and the first equal elements.
    """
    n = x.size(-1)
    lead: List[int] = list(x.shape[:-1])
    rows = x.reshape(-1, n)
    values, _ = torch.topk(rows, k, dim=1, largest=True, sorted=True)
    threshold = values[:, k - 1:k]
    above = rows > threshold
    equal = rows == threshold
    need = k - above.sum(dim=1, keepdim=True)
    keep = above | (equal & (torch.cumsum(equal.to(torch.int64), dim=1) <= need))
    positions = torch.arange(n, device=x.device).expand(rows.size(0), n)
    chosen = positions[keep].reshape(rows.size(0), k)
    chosen_values = torch.gather(rows, 1, chosen)
    order = torch.sort(chosen_values, dim=1, descending=True, stable=True)[1]
    out_idx = torch.gather(chosen, 1, order)
    out_val = torch.gather(chosen_values, 1, order)
    return out_val.reshape(lead + [k]), out_idx.to(torch.int32).reshape(lead + [k])


def sparse_to_dense(indices: torch.Tensor, shape: List[int], values: torch.Tensor,
                    default: torch.Tensor) -> torch.Tensor:
    """TF SparseToDense: scatter values (or one scalar) at indices into a filled tensor."""
    out = torch.full(shape, 0, dtype=values.dtype, device=values.device)
    out.fill_(default.to(values.dtype).item())
    idx = indices.to(torch.int64)
    if idx.dim() < 2:
        idx = idx.reshape(-1, 1)
    n = idx.size(0)
    vals = values.reshape(-1)
    if vals.numel() == 1:
        vals = vals.expand(n)
    linear = torch.zeros(n, dtype=torch.int64, device=values.device)
    for j in range(idx.size(1)):
        linear = linear * shape[j] + idx[:, j]
    flat = out.reshape(-1)
    flat[linear] = vals
    return flat.reshape(shape)


def depth_to_space_nchw(x: torch.Tensor, block: int) -> torch.Tensor:
    """TF DepthToSpace (DCR order) on an NCHW tensor: channel (i*block + j)*C + c."""
    n, c, h, w = x.shape
    oc = c // (block * block)
    y = x.reshape(n, block, block, oc, h, w).permute(0, 3, 4, 1, 5, 2)
    return y.reshape(n, oc, h * block, w * block)


def space_to_depth_nchw(x: torch.Tensor, block: int) -> torch.Tensor:
    """TF SpaceToDepth on an NCHW tensor (inverse of depth_to_space_nchw)."""
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // block, block, w // block, block).permute(0, 3, 5, 1, 2, 4)
    return y.reshape(n, block * block * c, h // block, w // block)
