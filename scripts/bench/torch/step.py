#!/usr/bin/env python3
"""PyTorch reference for `npm run bench`: the same training step in PyTorch.

Builds the bench's workloads (scripts/bench/workloads.ts) in plain PyTorch,
written after the TypeScript modules (plugins/backbone-sam,
plugins/backbone-mobile-sam, plugins/method-{lora,adapter,adalora}) in the
layout of the official PyTorch code (SAM's ImageEncoderViT, MobileSAM's
TinyViT, Medical-SAM-Adapter's adapters, loralib / AdaLoRA), and times the
training step: forward, loss = mean(encoder(x)^2) (+ AdaLoRA's orthogonal
regulariser), backward, Adam (lr 1e-4) on the method's parameters only, and
for AdaLoRA the rank allocator's update.

  /usr/bin/python3 scripts/bench/torch/step.py --workload w2 --method lora
  options: --workload w1|w2  --method lora|adapter|adalora  --steps 5
           --forwards 1  --threads N (default: the cores)  --json
           --expect-trainable N --expect-total N (default: the table below)

torch + stdlib only. See README.md beside this file.
"""
import argparse
import json
import math
import os
import platform
import resource
import statistics
import sys
import time


def _threads_from_argv(argv):
    for i, a in enumerate(argv):
        if a.startswith("--threads="):
            return int(a.split("=", 1)[1])
        if a == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
    return None


# Before torch loads: OpenBLAS (pthread build) sizes its own thread pool from
# its environment at load time; torch.set_num_threads does not reach it.
# An OPENBLAS_NUM_THREADS already set is kept: with Debian's OpenBLAS as the
# system BLAS, torch's OpenMP threads over OpenBLAS's own oversubscribe the
# cores, and PyTorch at its best here runs N torch threads over 1 BLAS thread
# (`npm run bench -- --torch` measures 1 and 2 threads that way).
THREADS = _threads_from_argv(sys.argv[1:]) or os.cpu_count() or 1
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(THREADS)
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(THREADS))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

# --------------------------------------------------------------------------
# Workloads and methods (scripts/bench/workloads.ts)
# --------------------------------------------------------------------------

# untimed inference forwards before the timed ones, as the TS harness (scripts/bench/case.ts):
# both sides are timed at the steady state of a process that serves or predicts many images
INFERENCE_WARMUP = 20

WORKLOADS = {
    # sam, preset vit_b shrunk
    "w1": dict(kind="sam", batch=2, img_size=256, patch_size=16, embed_dim=192, depth=4, num_heads=3,
               mlp_ratio=4.0, window_size=8, global_attn_indexes=[3], use_rel_pos=True, out_chans=64),
    # mobile_sam, preset tiny_vit, no classifier head
    "w2": dict(kind="tiny_vit", batch=2, img_size=256, embed_dims=[64, 128, 160, 320], depths=[2, 2, 6, 2],
               num_heads=[2, 4, 5, 10], window_sizes=[7, 7, 14, 7], mlp_ratio=4.0, mbconv_expand_ratio=4.0,
               local_conv_size=3, out_chans=256),
}

METHODS = {
    # LoRA r 4, alpha 1 (scaling 1/4), on q and v of qkv and both MLP linears; A kaiming-uniform, B zero
    "lora": dict(r=4, alpha=1.0),
    # Medical-SAM-Adapter: Space_Adapter (skip) after attention, MLP_Adapter (no skip, x0.5) beside the MLP;
    # hidden int(dim * 0.25); D_fc2 zero-initialised (the TS default zero_init)
    "adapter": dict(mlp_ratio=0.25, mlp_scale=0.5, zero_init=True),
    # AdaLoRA init_r 4, target_r 4, alpha 1, on qkv, proj, fc1, fc2 (whole layers); A, B ~ N(0, 0.02), E zero
    "adalora": dict(init_r=4, target_r=4, alpha=1.0, init_warmup=500, final_warmup=1500, mask_interval=10,
                    total_step=3000, beta1=0.85, beta2=0.85, orth_reg_weight=0.1),
}

# What the TS side reports (CaseResult.trainableParameters / totalParameters,
# i.e. compose(...).report() with trainDecoder false). The TS total is the
# whole `sam` / `mobile_sam` model: image encoder + prompt encoder + mask
# decoder; here the encoder is built and the head counted by formula
# (sam_head_parameters). Regenerate from `npm run -s bench -- --workload w1
# --method lora --steps 1 --forwards 1 --json` when the workloads change.
EXPECTED = {
    ("w1", "lora"): dict(trainable=43008, total=2337544, encoder=2078400),
    ("w1", "adapter"): dict(trainable=149376, total=2443912, encoder=2184768),
    ("w1", "adalora"): dict(trainable=49216, total=2343752, encoder=2084608),
    ("w2", "lora"): dict(trainable=103936, total=9913028, encoder=5848468),
    ("w2", "adapter"): dict(trainable=395808, total=10204900, encoder=6140340),
    ("w2", "adalora"): dict(trainable=118944, total=9928036, encoder=5863476),
}

# --------------------------------------------------------------------------
# Shared layers
# --------------------------------------------------------------------------


def uniform_(t, bound):
    with torch.no_grad():
        return t.uniform_(-bound, bound)


class LayerNorm2d(nn.Module):
    """SAM's LayerNorm2d: a norm over the channels of an NCHW map."""

    def __init__(self, channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


def neck(in_chans, out_chans):
    return nn.Sequential(
        nn.Conv2d(in_chans, out_chans, 1, bias=False),
        LayerNorm2d(out_chans),
        nn.Conv2d(out_chans, out_chans, 3, padding=1, bias=False),
        LayerNorm2d(out_chans),
    )


# --------------------------------------------------------------------------
# w1: SAM's ViT image encoder (channels-last blocks, NCHW neck)
# --------------------------------------------------------------------------


def get_rel_pos(q_size, k_size, table):
    """The relative-position table looked up for every (query, key) pair: [q, k, C]."""
    max_rel = 2 * max(q_size, k_size) - 1
    if table.shape[0] != max_rel:  # not the case in the bench (tables sized for the grid)
        table = F.interpolate(table.t()[None], size=max_rel, mode="linear")[0].t()
    q = torch.arange(q_size)[:, None] * max(k_size / q_size, 1.0)
    k = torch.arange(k_size)[None, :] * max(q_size / k_size, 1.0)
    rel = (q - k) + (k_size - 1) * max(q_size / k_size, 1.0)
    return table[rel.long()]


def add_decomposed_rel_pos(attn, q, rel_pos_h, rel_pos_w, q_hw, k_hw):
    (qh, qw), (kh, kw) = q_hw, k_hw
    rh = get_rel_pos(qh, kh, rel_pos_h)
    rw = get_rel_pos(qw, kw, rel_pos_w)
    b, _, c = q.shape
    rq = q.reshape(b, qh, qw, c)
    rel_h = torch.einsum("bhwc,hkc->bhwk", rq, rh)
    rel_w = torch.einsum("bhwc,wkc->bhwk", rq, rw)
    attn = attn.view(b, qh, qw, kh, kw) + rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]
    return attn.view(b, qh * qw, kh * kw)


class SamAttention(nn.Module):
    def __init__(self, dim, num_heads, rel_pos_size):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * rel_pos_size[0] - 1, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * rel_pos_size[1] - 1, head_dim))

    def forward(self, x):  # [B, H, W, C]
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, b * self.num_heads, h * w, -1).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = add_decomposed_rel_pos(attn, q, self.rel_pos_h, self.rel_pos_w, (h, w), (h, w))
        attn = attn.softmax(dim=-1)
        x = (attn @ v).view(b, self.num_heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
        return self.proj(x)


class SamMlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.lin2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.lin2(self.act(self.lin1(x)))


def window_partition(x, ws):
    b, h, w, c = x.shape
    ph, pw = (ws - h % ws) % ws, (ws - w % ws) % ws
    if ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
    hp, wp = h + ph, w + pw
    x = x.view(b, hp // ws, ws, wp // ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, ws, ws, c), (hp, wp)


def window_unpartition(windows, ws, pad_hw, hw):
    (hp, wp), (h, w) = pad_hw, hw
    b = windows.shape[0] // (hp * wp // ws // ws)
    x = windows.view(b, hp // ws, wp // ws, ws, ws, -1).permute(0, 1, 3, 2, 4, 5).contiguous().view(b, hp, wp, -1)
    return x[:, :h, :w, :].contiguous() if hp > h or wp > w else x


class SamBlock(nn.Module):
    """Block of ImageEncoderViT with Medical-SAM-Adapter's adapter hook points."""

    def __init__(self, dim, num_heads, mlp_ratio, window_size, grid):
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SamAttention(dim, num_heads, (window_size, window_size) if window_size > 0 else (grid, grid))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = SamMlp(dim, int(dim * mlp_ratio))
        self.mlp_adapter_scale = 1.0

    def forward(self, x):  # [B, H, W, C]
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            h, w = x.shape[1], x.shape[2]
            x, pad_hw = window_partition(x, self.window_size)
        x = self.attn(x)
        if hasattr(self, "Space_Adapter"):
            x = self.Space_Adapter(x)
        if self.window_size > 0:
            x = window_unpartition(x, self.window_size, pad_hw, (h, w))
        x = shortcut + x
        xn = self.norm2(x)
        out = x + self.mlp(xn)
        if hasattr(self, "MLP_Adapter"):
            out = out + self.mlp_adapter_scale * self.MLP_Adapter(xn)
        return out


class SamImageEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        grid = c["img_size"] // c["patch_size"]
        dim = c["embed_dim"]
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dim, c["patch_size"], stride=c["patch_size"])
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, dim))  # zeros, as the TS init
        self.blocks = nn.ModuleList(
            SamBlock(dim, c["num_heads"], c["mlp_ratio"], 0 if i in c["global_attn_indexes"] else c["window_size"], grid)
            for i in range(c["depth"])
        )
        self.neck = neck(dim, c["out_chans"])

    def forward(self, images):  # [B, 3, H, W] -> [B, out_chans, H/16, W/16]
        x = self.patch_embed.proj(images).permute(0, 2, 3, 1)
        x = x + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.neck(x.permute(0, 3, 1, 2))

    def sites(self):
        """(path, role, module) of every linear site and block site, as plugins/backbone-sam/sites.ts."""
        out = []
        for i, b in enumerate(self.blocks):
            p = f"blocks.{i}"
            out += [(f"{p}.attn.qkv", "attn.qkv"), (f"{p}.attn.proj", "attn.proj"),
                    (f"{p}.mlp.lin1", "mlp.fc1"), (f"{p}.mlp.lin2", "mlp.fc2"), (p, "block")]
        return out


# --------------------------------------------------------------------------
# w2: MobileSAM's TinyViT (NCHW convs, [B, L, C] tokens in attention stages)
# --------------------------------------------------------------------------


class Conv2dBN(nn.Sequential):
    """Bias-free conv `c` + batch norm `bn` (kept in eval mode: running statistics, as the TS BatchNorm2d)."""

    def __init__(self, a, b, ks=1, stride=1, pad=0, groups=1):
        super().__init__()
        self.add_module("c", nn.Conv2d(a, b, ks, stride, pad, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(b))


class TvPatchEmbed(nn.Module):
    def __init__(self, in_chans, dim):
        super().__init__()
        self.seq = nn.Sequential(Conv2dBN(in_chans, dim // 2, 3, 2, 1), nn.GELU(), Conv2dBN(dim // 2, dim, 3, 2, 1))

    def forward(self, x):
        return self.seq(x)


class MBConv(nn.Module):
    def __init__(self, dim, expand_ratio):
        super().__init__()
        hidden = int(dim * expand_ratio)
        self.conv1 = Conv2dBN(dim, hidden, 1)
        self.conv2 = Conv2dBN(hidden, hidden, 3, 1, 1, groups=hidden)
        self.conv3 = Conv2dBN(hidden, dim, 1)
        self.act = nn.GELU()

    def forward(self, x):
        y = self.act(self.conv1(x))
        y = self.act(self.conv2(y))
        y = self.conv3(y)
        return self.act(y + x)


def merge_stride(out_dim):
    return 1 if out_dim in (320, 448, 576) else 2


class PatchMerging(nn.Module):
    def __init__(self, dim, out_dim):
        super().__init__()
        self.conv1 = Conv2dBN(dim, out_dim, 1)
        self.conv2 = Conv2dBN(out_dim, out_dim, 3, merge_stride(out_dim), 1, groups=out_dim)
        self.conv3 = Conv2dBN(out_dim, out_dim, 1)
        self.act = nn.GELU()

    def forward(self, x, hw):  # NCHW, or tokens [B, L, C] on grid hw -> tokens [B, L', C'], grid
        if x.ndim == 3:
            b, _, c = x.shape
            x = x.view(b, hw[0], hw[1], c).permute(0, 3, 1, 2)
        x = self.conv3(self.act(self.conv2(self.act(self.conv1(x)))))
        return x.flatten(2).transpose(1, 2), (x.shape[2], x.shape[3])


def attention_bias_idxs(ws):
    points = [(r, c) for r in range(ws) for c in range(ws)]
    offsets, idxs = {}, []
    for p1 in points:
        for p2 in points:
            off = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
            idxs.append(offsets.setdefault(off, len(offsets)))
    return torch.tensor(idxs, dtype=torch.long).view(len(points), len(points)), len(offsets)


class TvAttention(nn.Module):
    """LeViT-style attention of TinyViT: own LayerNorm, per-head qkv layout, learned offset biases."""

    def __init__(self, dim, num_heads, window):
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = dim // num_heads
        self.scale = self.key_dim ** -0.5
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, num_heads * 3 * self.key_dim)
        self.proj = nn.Linear(num_heads * self.key_dim, dim)
        idxs, n = attention_bias_idxs(window)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, n))
        self.register_buffer("attention_bias_idxs", idxs, persistent=False)

    def forward(self, x):  # [n, N, C]
        b, n, _ = x.shape
        qkv = self.qkv(self.norm(x)).view(b, n, self.num_heads, -1)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.key_dim], dim=3)
        q, k, v = q.permute(0, 2, 1, 3), k.permute(0, 2, 1, 3), v.permute(0, 2, 1, 3)
        attn = (q @ k.transpose(-2, -1)) * self.scale + self.attention_biases[:, self.attention_bias_idxs]
        x = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, -1)
        return self.proj(x)


class TvMlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.act = nn.GELU()

    def forward(self, x):
        return self.fc2(self.act(self.fc1(self.norm(x))))


class TinyViTBlock(nn.Module):
    """TinyViT block with Medical-SAM-Adapter's hook points (Space_Adapter on the windows, MLP_Adapter beside the MLP)."""

    def __init__(self, dim, num_heads, window_size, mlp_ratio, local_conv_size):
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.attn = TvAttention(dim, num_heads, window_size)
        self.mlp = TvMlp(dim, int(dim * mlp_ratio))
        self.local_conv = Conv2dBN(dim, dim, local_conv_size, 1, local_conv_size // 2, groups=dim)
        self.mlp_adapter_scale = 1.0

    def forward(self, x, hw):  # [B, L, C]
        h, w = hw
        b, l, c = x.shape
        ws = self.window_size
        res = x
        if h == ws and w == ws:
            x = self.attn(x)  # one window: no Space_Adapter (as the reference)
        else:
            x = x.view(b, h, w, c)
            pb, pr = (ws - h % ws) % ws, (ws - w % ws) % ws
            if pb or pr:
                x = F.pad(x, (0, 0, 0, pr, 0, pb))
            ph, pw = h + pb, w + pr
            nh, nw = ph // ws, pw // ws
            x = x.view(b, nh, ws, nw, ws, c).transpose(2, 3).reshape(b * nh * nw, ws * ws, c)
            x = self.attn(x)
            if hasattr(self, "Space_Adapter"):
                x = self.Space_Adapter(x)
            x = x.view(b, nh, nw, ws, ws, c).transpose(2, 3).reshape(b, ph, pw, c)
            if pb or pr:
                x = x[:, :h, :w].contiguous()
            x = x.view(b, l, c)
        x = res + x
        x = self.local_conv(x.transpose(1, 2).reshape(b, c, h, w)).view(b, c, l).transpose(1, 2)
        out = x + self.mlp(x)
        if hasattr(self, "MLP_Adapter"):
            out = out + self.mlp_adapter_scale * self.MLP_Adapter(x)
        return out


class TvStage(nn.Module):
    def __init__(self, blocks, downsample):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        if downsample is not None:
            self.downsample = downsample

    def forward(self, x, hw):
        for blk in self.blocks:
            x = blk(x) if isinstance(blk, MBConv) else blk(x, hw)
        if hasattr(self, "downsample"):
            x, hw = self.downsample(x, hw)
        return x, hw


class TinyViT(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["embed_dims"]
        self.patch_embed = TvPatchEmbed(3, d[0])
        stages = []
        for i, dim in enumerate(d):
            if i == 0:
                blocks = [MBConv(dim, c["mbconv_expand_ratio"]) for _ in range(c["depths"][0])]
            else:
                blocks = [TinyViTBlock(dim, c["num_heads"][i], c["window_sizes"][i], c["mlp_ratio"], c["local_conv_size"])
                          for _ in range(c["depths"][i])]
            stages.append(TvStage(blocks, PatchMerging(dim, d[i + 1]) if i + 1 < len(d) else None))
        self.layers = nn.ModuleList(stages)
        self.norm_head = nn.LayerNorm(d[-1])  # in the state dict, unused (num_classes 0: no `head`)
        self.neck = neck(d[-1], c["out_chans"])

    def forward(self, images):  # [B, 3, H, W] -> [B, out_chans, H/16, W/16]
        x = self.patch_embed(images)
        hw = (x.shape[2], x.shape[3])
        for stage in self.layers:
            x, hw = stage(x, hw)
        b, _, c = x.shape
        return self.neck(x.view(b, hw[0], hw[1], c).permute(0, 3, 1, 2))

    def sites(self):
        out = []
        for i, stage in enumerate(self.layers):
            if i == 0:
                continue
            for j in range(len(stage.blocks)):
                p = f"layers.{i}.blocks.{j}"
                out += [(f"{p}.attn.qkv", "attn.qkv"), (f"{p}.attn.proj", "attn.proj"),
                        (f"{p}.mlp.fc1", "mlp.fc1"), (f"{p}.mlp.fc2", "mlp.fc2"), (p, "block")]
        return out


def sam_head_parameters(e):
    """Parameters of the SAM prompt encoder + mask decoder the TS backbones carry
    (src/core/segment/sam-head.ts, defaultSamHeadConfig): not built here (the
    step does not use them), counted so the total compares with the TS report."""
    official = e >= 256
    mlp_dim, iou_hidden = (2048, 256) if official else (8 * e, e)
    lin = lambda i, o: i * o + o  # noqa: E731
    attn = lambda d: 3 * lin(e, d) + lin(d, e)  # noqa: E731  (q, k, v, out projections; d = internal dim)
    mask_in = 16
    prompt = 4 * e + e + e  # point_embeddings.0-3, not_a_point_embed, no_mask_embed
    prompt += (mask_in // 4) * 4 + mask_in // 4 + 2 * (mask_in // 4)  # mask_downscaling.0 (2x2 conv) + LayerNorm2d
    prompt += mask_in * (mask_in // 4) * 4 + mask_in + 2 * mask_in + lin(mask_in, e)  # .3 conv, .4 LN2d, .6 1x1 conv
    block = attn(e) + 2 * attn(e // 2) + 4 * 2 * e + lin(e, mlp_dim) + lin(mlp_dim, e)
    transformer = 2 * block + attn(e // 2) + 2 * e
    tokens = e + 4 * e  # iou_token, mask_tokens (3 multimask outputs + 1)
    upscaling = e * (e // 4) * 4 + e // 4 + 2 * (e // 4) + (e // 4) * (e // 8) * 4 + e // 8
    hyper = 4 * (2 * lin(e, e) + lin(e, e // 8))
    iou = lin(e, iou_hidden) + lin(iou_hidden, iou_hidden) + lin(iou_hidden, 4)
    return prompt + transformer + tokens + upscaling + hyper + iou


# --------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------


class LoraLinear(nn.Module):
    """loralib Linear / MergedLinear: y = x W^T + b + (x A^T B^T) * scaling on the enabled output groups.
    Takes over the base `weight` and `bias` under the same names."""

    def __init__(self, base, r, scaling, enabled=None):
        super().__init__()
        self.weight, self.bias = base.weight, base.bias
        out_f, in_f = base.weight.shape
        self.r, self.scaling, self.enabled = r, scaling, enabled
        k = 1 if enabled is None else sum(enabled)
        self.group_width = out_f if enabled is None else out_f // len(enabled)
        self.lora_A = nn.Parameter(uniform_(torch.empty(r * k, in_f), 1 / math.sqrt(in_f)))
        self.lora_B = nn.Parameter(torch.zeros(self.group_width * k, r))

    def forward(self, x):
        y = F.linear(x, self.weight, self.bias)
        h = F.linear(x, self.lora_A)
        if self.enabled is None:
            return y + F.linear(h, self.lora_B) * self.scaling
        r, gw, parts, j = self.r, self.group_width, [], 0
        for on in self.enabled:
            if on:
                parts.append(F.linear(h[..., j * r:(j + 1) * r], self.lora_B[j * gw:(j + 1) * gw]))
                j += 1
            else:
                parts.append(x.new_zeros(*x.shape[:-1], gw))
        return y + torch.cat(parts, dim=-1) * self.scaling


class SVDLinear(nn.Module):
    """AdaLoRA's SVD-form linear: y = x W^T + b + (x (A*E)^T B^T) * s / (ranknum + 1e-5)."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.weight, self.bias = base.weight, base.bias
        out_f, in_f = base.weight.shape
        self.scaling = alpha if alpha > 0 else r
        self.lora_A = nn.Parameter(torch.randn(r, in_f) * 0.02)
        self.lora_E = nn.Parameter(torch.zeros(r, 1))
        self.lora_B = nn.Parameter(torch.randn(out_f, r) * 0.02)
        self.register_buffer("ranknum", torch.tensor([float(r)]))

    def forward(self, x):
        y = F.linear(x, self.weight, self.bias)
        h = F.linear(F.linear(x, self.lora_A * self.lora_E), self.lora_B)
        return y + h * self.scaling / (self.ranknum + 1e-5)


class Adapter(nn.Module):
    """Medical-SAM-Adapter's Adapter: D_fc2(GELU(D_fc1(x))), plus x with skip_connect."""

    def __init__(self, features, hidden, skip, zero_init):
        super().__init__()
        self.skip = skip
        self.act = nn.GELU()
        self.D_fc1 = nn.Linear(features, hidden)
        self.D_fc2 = nn.Linear(hidden, features)
        if zero_init:
            nn.init.zeros_(self.D_fc2.weight)
            nn.init.zeros_(self.D_fc2.bias)

    def forward(self, x):
        h = self.D_fc2(self.act(self.D_fc1(x)))
        return x + h if self.skip else h


def set_module(root, path, module):
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


def attach(encoder, method):
    """Freezes the encoder and injects the method at the sites the TS method selects; returns the SVD layers."""
    cfg = METHODS[method]
    encoder.requires_grad_(False)
    svd = []
    for path, role in encoder.sites():
        if method == "lora" and role in ("attn.qkv", "mlp.fc1", "mlp.fc2"):
            enabled = [True, False, True] if role == "attn.qkv" else None  # attn.qkv[q,v]: contiguous thirds
            set_module(encoder, path, LoraLinear(encoder.get_submodule(path), cfg["r"], cfg["alpha"] / cfg["r"], enabled))
        elif method == "adalora" and role != "block":
            layer = SVDLinear(encoder.get_submodule(path), cfg["init_r"], cfg["alpha"])
            set_module(encoder, path, layer)
            svd.append((path, layer))
        elif method == "adapter" and role == "block":
            block = encoder.get_submodule(path)
            hidden = int(block.dim * cfg["mlp_ratio"])
            block.Space_Adapter = Adapter(block.dim, hidden, True, cfg["zero_init"])
            block.MLP_Adapter = Adapter(block.dim, hidden, False, cfg["zero_init"])
            block.mlp_adapter_scale = cfg["mlp_scale"]
    return svd


def orthogonal_regulariser(svd, weight):
    total = 0.0
    for _, layer in svd:
        a, b = layer.lora_A, layer.lora_B
        total = total + torch.norm(a @ a.T - torch.eye(a.shape[0]), p="fro")
        total = total + torch.norm(b.T @ b - torch.eye(b.shape[1]), p="fro")
    return weight * total / (2 * len(svd))


class RankAllocator:
    """AdaLoRA's RankAllocator as plugins/method-adalora/rank-allocator.ts: importance EMAs of |p * grad|
    while t < T - t_f, the cubic budget schedule, and masking E by one global threshold on mask steps."""

    def __init__(self, cfg, n):
        self.c = cfg
        self.total, self.target = cfg["init_r"] * n, cfg["target_r"] * n
        self.ipt, self.unc = {}, {}

    def budget(self, t):
        c = self.c
        ti, tf_, big_t = c["init_warmup"], c["final_warmup"], c["total_step"]
        if t <= ti:
            return self.total, False
        if t > big_t - tf_:
            return self.target, True
        coeff = 1 - (t - ti) / (big_t - tf_ - ti)
        return int(self.target + (self.total - self.target) * coeff ** 3), t % c["mask_interval"] == 0

    @torch.no_grad()
    def update(self, t, svd):
        b1, b2 = self.c["beta1"], self.c["beta2"]
        if t < self.c["total_step"] - self.c["final_warmup"]:
            for path, layer in svd:
                for name in ("lora_A", "lora_E", "lora_B"):
                    p = getattr(layer, name)
                    key = f"{path}.{name}"
                    ipt = (p * p.grad).abs()
                    ema = self.ipt.get(key, torch.zeros_like(ipt)) * b1 + ipt * (1 - b1)
                    self.unc[key] = self.unc.get(key, torch.zeros_like(ipt)) * b2 + (ipt - ema).abs() * (1 - b2)
                    self.ipt[key] = ema
        budget, mask = self.budget(t)
        if not mask:
            return budget

        def score(key, p):
            return self.ipt[key] * self.unc[key] if key in self.ipt else torch.zeros_like(p)

        scores = [score(f"{pa}.lora_E", l.lora_E).view(-1) + score(f"{pa}.lora_A", l.lora_A).mean(1)
                  + score(f"{pa}.lora_B", l.lora_B).mean(0) for pa, l in svd]
        k = sum(s.numel() for s in scores) - budget
        if k > 0:
            threshold = torch.cat(scores).sort().values[k - 1]
            for (_, layer), s in zip(svd, scores):
                layer.lora_E.masked_fill_((s <= threshold).view(-1, 1), 0.0)
        return budget


# --------------------------------------------------------------------------
# The measurement
# --------------------------------------------------------------------------


def blas_info():
    """The BLAS_INFO of torch's build, and the BLAS library actually loaded (with its thread count)."""
    info = next((p.strip() for p in torch.__config__.show().replace("\n", ",").split(",") if "BLAS_INFO=" in p), "BLAS_INFO=?")
    info = info[info.index("BLAS_INFO="):]
    try:
        libs = sorted({ln.split()[-1] for ln in open("/proc/self/maps") if "blas" in ln.split()[-1].lower()})
        openblas = [x for x in libs if "openblas" in os.path.basename(x)]
        if openblas:
            import ctypes
            lib = ctypes.CDLL(openblas[0])
            lib.openblas_get_corename.restype = ctypes.c_char_p
            core = lib.openblas_get_corename().decode()
            info += f", {os.path.basename(openblas[0])} ({lib.openblas_get_num_threads()} threads, {core} kernels)"
        elif libs:
            info += f", {os.path.basename(os.path.realpath(libs[0]))}"
    except Exception:  # noqa: BLE001 - informational only
        pass
    return info


def build(workload, method, seed):
    torch.manual_seed(seed)
    c = WORKLOADS[workload]
    encoder = SamImageEncoder(c) if c["kind"] == "sam" else TinyViT(c)
    svd = attach(encoder, method)
    encoder.train()
    for m in encoder.modules():  # batch norm in inference mode, as the TS BatchNorm2d (frozen statistics)
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
    return c, encoder, svd


def run(args):
    torch.set_num_threads(args.threads)
    c, encoder, svd = build(args.workload, args.method, args.seed)
    cfg = METHODS[args.method]
    params = [p for p in encoder.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params)
    encoder_total = sum(p.numel() for p in encoder.parameters())
    head = sam_head_parameters(c["out_chans"])
    total = encoder_total + head
    expected = dict(EXPECTED.get((args.workload, args.method), {}))
    if args.expect_trainable is not None:
        expected["trainable"] = args.expect_trainable
    if args.expect_total is not None:
        expected["total"] = args.expect_total
    problems = []
    for key, have in (("trainable", trainable), ("total", total), ("encoder", encoder_total)):
        if key in expected and expected[key] != have:
            problems.append(f"{key} parameters: torch {have} != TS {expected[key]}")

    images = torch.randn(c["batch"], 3, c["img_size"], c["img_size"], generator=torch.Generator().manual_seed(1234))
    grid = c["img_size"] // 16
    want_shape = [c["batch"], c["out_chans"], grid, grid]  # TS: [B, grid, grid, out_chans] channels-last
    opt = torch.optim.Adam(params, lr=1e-4)
    allocator = RankAllocator(cfg, len(svd)) if args.method == "adalora" else None
    losses = []

    def step():
        y = encoder(images)
        loss = y.pow(2).mean()
        if svd:
            loss = loss + orthogonal_regulariser(svd, cfg["orth_reg_weight"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if allocator:
            allocator.update(len(losses), svd)  # the global step t (1-based), as the TS afterStep

    def timed(f):
        c0, t0 = time.process_time(), time.perf_counter()
        f()
        return (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3

    first_ms, _ = timed(step)
    step()  # warm-up
    walls, cpus = zip(*(timed(step) for _ in range(args.steps)))

    out_shape = []

    def forward(x):
        with torch.no_grad():
            y = encoder(x)
        out_shape[:] = list(y.shape)

    # inference: one image (batch 1), as a user's predict or serve call; then the whole batch
    one = images[:1].contiguous()
    for _ in range(INFERENCE_WARMUP):  # as the TS harness (scripts/bench/case.ts)
        forward(one)
    fwd = [timed(lambda: forward(one))[0] for _ in range(args.forwards)]
    forward(images)
    if out_shape != want_shape:
        problems.append(f"output shape {out_shape} != {want_shape} (TS {[want_shape[0], grid, grid, want_shape[1]]} channels-last)")

    return {
        "workload": args.workload,
        "method": args.method,
        "framework": "torch",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "ompWaitPolicy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "blas": blas_info(),
        "batch": c["batch"],
        "imageSize": c["img_size"],
        "outputShape": out_shape,
        "trainableParameters": trainable,
        "totalParameters": total,
        "encoderParameters": encoder_total,
        "headParameters": head,
        "expected": expected,
        "countsMatch": not any("parameters" in p for p in problems),
        "problems": problems,
        "firstStepMs": round(first_ms, 1),
        "stepMs": round(statistics.median(walls), 1),
        "stepMsAll": [round(x, 1) for x in walls],
        "stepCpuMs": round(statistics.median(cpus), 1),
        "inferenceMs": round(statistics.median(fwd), 1),
        "inferenceBatch": 1,
        "peakRssMB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "loss": [float(f"{x:.6g}") for x in losses],
        "loadAvg": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", choices=sorted(WORKLOADS), default="w2")
    ap.add_argument("--method", choices=sorted(METHODS), default="lora")
    ap.add_argument("--steps", type=int, default=5, help="timed steps, after 2 warm-up steps (the first is reported)")
    ap.add_argument("--forwards", type=int, default=1, help=f"timed inference forwards, after {INFERENCE_WARMUP} warm-ups")
    ap.add_argument("--threads", type=int, default=THREADS, help="torch and OpenBLAS threads (default: the cores)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--expect-trainable", type=int, help="trainable parameters the TS side reports (default: built-in table)")
    ap.add_argument("--expect-total", type=int, help="total parameters the TS side reports (default: built-in table)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    args.steps, args.forwards = max(1, args.steps), max(1, args.forwards)

    r = run(args)
    for p in r["problems"]:
        sys.stderr.write(f"\n*** MISMATCH with the TS workload: {p} ***\n")
    if args.json:
        print(json.dumps(r))
    else:
        print(f"{'workload':>8} {'method':>8} {'threads':>7} {'step ms':>8} {'step cpu ms':>11} {'first ms':>8} "
              f"{'infer ms':>8} {'peak RSS MB':>11} {'trainable':>9} {'total':>9}  load")
        print(f"{r['workload']:>8} {r['method']:>8} {r['threads']:>7} {r['stepMs']:>8.0f} {r['stepCpuMs']:>11.0f} "
              f"{r['firstStepMs']:>8.0f} {r['inferenceMs']:>8.0f} {r['peakRssMB']:>11.0f} {r['trainableParameters']:>9} "
              f"{r['totalParameters']:>9}  {' '.join(map(str, r['loadAvg']))}")
        print(f"torch {r['torch']}, {r['blas']}; output {r['outputShape']}; "
              f"parameter counts {'match the TS workload' if r['countsMatch'] else 'DO NOT MATCH the TS workload'}")
    return 2 if r["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
