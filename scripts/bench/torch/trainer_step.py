#!/usr/bin/env python3
"""PyTorch mirror of the README's main job's training step (`peft train` with no flags).

The main job: backbone mobile_sam, preset `tiny` (TinyViT at 128 px: dims 32,64,128; depths 1,1,2;
heads 1,2,4; windows 8,2,1; MLP and MBConv ratio 2; 64-channel neck), method lora with its defaults
(r 4, alpha 1, on the q and v thirds of attn.qkv and on mlp.fc1 / mlp.fc2), the SAM prompt encoder
and mask decoder sized by defaultSamHeadConfig(64) (4 heads, MLP 512, IoU head 64 wide), the mask
decoder trained with the LoRA factors (trainDecoder, the `peft train` default), batch 2, one click
prompt per image (plus SAM's padding point), multimask output sliced to the 2 classes (disc, cup) at
32 px, loss BCE-with-logits with pos_weight 2 (`--loss bce`, the default), Adam on the trainable
parameters only. One step = forward (encoder, prompt encoder, mask decoder) + loss + backward +
Adam, as src/app/train/step.ts's trainStep.

  /usr/bin/python3 scripts/bench/torch/trainer_step.py --threads 1,2 --steps 30
  options: --threads 1,2 (each timed in turn, OPENBLAS_NUM_THREADS=1; the faster is `stepMs`)
           --steps 30 (after 3 warm-up steps)  --json
           --list-parameters (name, shape, trainable: to diff against the TS model's, see README.md)
           --expect-trainable N --expect-total N (default: what `peft train` prints for the job)

Random weights, random images; torch + stdlib only. Reuses the encoder and LoRA of step.py (same
folder). See README.md beside this file.
"""
import math
import os
import sys

# Before torch loads (step.py sizes OMP/OpenBLAS from --threads): OpenBLAS single-threaded, torch's
# OpenMP pool as large as the largest --threads asked for; each measurement sets torch's threads.
_argv = sys.argv[1:]
_threads = [1, 2]
for _i, _a in enumerate(_argv):
    if _a.startswith("--threads="):
        _threads = [int(x) for x in _a.split("=", 1)[1].split(",")]
    elif _a == "--threads" and _i + 1 < len(_argv):
        _threads = [int(x) for x in _argv[_i + 1].split(",")]
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(max(_threads))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

_saved_argv, sys.argv = sys.argv, [sys.argv[0], "--threads", str(max(_threads))]  # step.py reads --threads N
import step as enc  # noqa: E402  (step.py: TinyViT, LoraLinear, attach, LayerNorm2d, blas_info)
sys.argv = _saved_argv

# plugins/backbone-mobile-sam/config.ts MOBILE_SAM_PRESETS.tiny
TINY = dict(kind="tiny_vit", img_size=128, embed_dims=[32, 64, 128], depths=[1, 1, 2], num_heads=[1, 2, 4],
            window_sizes=[8, 2, 1], mlp_ratio=2.0, mbconv_expand_ratio=2.0, local_conv_size=3, out_chans=64)
BATCH = 2
CLASSES = 2  # REFUGE: disc, cup
POS_WEIGHT = 2.0  # --loss bce: Medical-SAM-Adapter's BCEWithLogitsLoss(pos_weight=2)
LR = 3e-3  # mobile_sam's from-scratch recipe (the rate does not change the step's cost)

# `peft train` (and `peft plan`) for the main job: "270,140 trainable of 663,208 parameters"
EXPECTED = dict(trainable=270140, total=663208)


# --------------------------------------------------------------------------
# SAM's prompt encoder and mask decoder (src/core/segment/*), NCHW as the official code
# --------------------------------------------------------------------------


def head_config(e, img_size, patch):
    """src/core/segment/sam-head.ts defaultSamHeadConfig."""
    official = e >= 256
    heads = max(1, min(8, round(e / 16)))
    while heads > 1 and (e // 2) % heads:
        heads -= 1
    return dict(embed_dim=e, grid=img_size // patch, img_size=img_size, mask_in_chans=16, multimask=3, depth=2,
                mlp_dim=2048 if official else 8 * e, heads=heads, iou_depth=3, iou_hidden=256 if official else e)


class PositionEmbeddingRandom(nn.Module):
    def __init__(self, feats):
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, feats))

    def _pe(self, coords):  # [..., 2] in [0, 1] -> [..., 2F]
        c = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        c = 2 * math.pi * c
        return torch.cat([torch.sin(c), torch.cos(c)], dim=-1)

    def forward(self, size):  # [C, h, w]
        h, w = size
        grid = torch.ones(h, w)
        y = (grid.cumsum(0) - 0.5) / h
        x = (grid.cumsum(1) - 0.5) / w
        return self._pe(torch.stack([x, y], dim=-1)).permute(2, 0, 1)

    def forward_with_coords(self, coords, image_size):
        c = coords.clone()
        c[:, :, 0] = c[:, :, 0] / image_size[1]
        c[:, :, 1] = c[:, :, 1] / image_size[0]
        return self._pe(c)


class PromptEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        e, m = c["embed_dim"], c["mask_in_chans"]
        self.grid, self.img_size = c["grid"], c["img_size"]
        self.pe_layer = PositionEmbeddingRandom(e // 2)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, e) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, e)
        self.mask_downscaling = nn.Sequential(  # counted, not run (no mask prompt), as the TS step
            nn.Conv2d(1, m // 4, 2, 2), enc.LayerNorm2d(m // 4), nn.GELU(),
            nn.Conv2d(m // 4, m, 2, 2), enc.LayerNorm2d(m), nn.GELU(), nn.Conv2d(m, e, 1))
        self.no_mask_embed = nn.Embedding(1, e)

    def dense_pe(self):
        return self.pe_layer((self.grid, self.grid)).unsqueeze(0)

    def forward(self, points, labels):
        b = points.shape[0]
        points = torch.cat([points + 0.5, torch.zeros(b, 1, 2)], dim=1)  # SAM's padding point (no boxes)
        labels = torch.cat([labels, -torch.ones(b, 1)], dim=1)
        pe = self.pe_layer.forward_with_coords(points, (self.img_size, self.img_size))
        lab = labels.unsqueeze(-1)
        sparse = pe * (lab != -1) + self.not_a_point_embed.weight * (lab == -1) \
            + self.point_embeddings[0].weight * (lab == 0) + self.point_embeddings[1].weight * (lab == 1)
        dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(b, -1, self.grid, self.grid)
        return sparse, dense


class Attention(nn.Module):
    def __init__(self, dim, heads, downsample=1):
        super().__init__()
        internal = dim // downsample
        self.heads = heads
        self.q_proj, self.k_proj = nn.Linear(dim, internal), nn.Linear(dim, internal)
        self.v_proj, self.out_proj = nn.Linear(dim, internal), nn.Linear(internal, dim)

    def _sep(self, x):
        b, n, c = x.shape
        return x.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)

    def forward(self, q, k, v):
        q, k, v = self._sep(self.q_proj(q)), self._sep(self.k_proj(k)), self._sep(self.v_proj(v))
        attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
        out = (attn @ v).transpose(1, 2)
        return self.out_proj(out.reshape(out.shape[0], out.shape[1], -1))


class MLPBlock(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.lin1, self.lin2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.lin2(F.relu(self.lin1(x)))


class TwoWayBlock(nn.Module):
    def __init__(self, dim, heads, mlp_dim, skip_first_pe):
        super().__init__()
        self.skip_first_pe = skip_first_pe
        self.self_attn = Attention(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = Attention(dim, heads, 2)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, mlp_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = Attention(dim, heads, 2)

    def forward(self, queries, keys, query_pe, key_pe):
        if self.skip_first_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))
        queries = self.norm3(queries + self.mlp(queries))
        q = queries + query_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        e = c["embed_dim"]
        self.layers = nn.ModuleList(TwoWayBlock(e, c["heads"], c["mlp_dim"], i == 0) for i in range(c["depth"]))
        self.final_attn_token_to_image = Attention(e, c["heads"], 2)
        self.norm_final_attn = nn.LayerNorm(e)

    def forward(self, image, image_pe, tokens):  # NCHW image and pe, [B, N, C] tokens
        keys, key_pe = image.flatten(2).transpose(1, 2), image_pe.flatten(2).transpose(1, 2)
        queries = tokens
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, key_pe)
        out = self.final_attn_token_to_image(queries + tokens, keys + key_pe, keys)
        return self.norm_final_attn(queries + out), keys


class MLP(nn.Module):
    def __init__(self, i, h, o, n):
        super().__init__()
        dims = [i] + [h] * (n - 1) + [o]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x):
        for j, layer in enumerate(self.layers):
            x = layer(x) if j == len(self.layers) - 1 else F.relu(layer(x))
        return x


class MaskDecoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        e = c["embed_dim"]
        self.multimask = c["multimask"]
        n = self.multimask + 1
        self.transformer = TwoWayTransformer(c)
        self.iou_token = nn.Embedding(1, e)
        self.mask_tokens = nn.Embedding(n, e)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(e, e // 4, 2, 2), enc.LayerNorm2d(e // 4), nn.GELU(),
            nn.ConvTranspose2d(e // 4, e // 8, 2, 2), nn.GELU())
        self.output_hypernetworks_mlps = nn.ModuleList(MLP(e, e, e // 8, 3) for _ in range(n))
        self.iou_prediction_head = MLP(e, c["iou_hidden"], n, c["iou_depth"])

    def forward(self, image, image_pe, sparse, dense):
        """SAM's predict_masks, multimask: masks [B, 3, 4h, 4w] and IoU [B, 3]."""
        b, c, h, w = image.shape
        out_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([out_tokens.unsqueeze(0).expand(b, -1, -1), sparse], dim=1)
        hs, src = self.transformer(image + dense, image_pe, tokens)
        up = self.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
        n = self.multimask + 1
        hyper = torch.stack([self.output_hypernetworks_mlps[i](hs[:, 1 + i]) for i in range(n)], dim=1)
        bu, cu, hu, wu = up.shape
        masks = (hyper @ up.view(bu, cu, hu * wu)).view(b, -1, hu, wu)
        iou = self.iou_prediction_head(hs[:, 0])
        return masks[:, 1:], iou[:, 1:]


class MobileSam(nn.Module):
    def __init__(self):
        super().__init__()
        self.image_encoder = enc.TinyViT(TINY)
        head = head_config(TINY["out_chans"], TINY["img_size"], 16)
        self.prompt_encoder = PromptEncoder(head)
        self.mask_decoder = MaskDecoder(head)

    def forward(self, images, points, labels):
        emb = self.image_encoder(images)
        sparse, dense = self.prompt_encoder(points, labels)
        masks, _ = self.mask_decoder(emb, self.prompt_encoder.dense_pe(), sparse, dense)
        return masks[:, :CLASSES]  # multimask outputs 1, 2 for disc and cup (32 px = the targets' size)


def build(seed=0):
    torch.manual_seed(seed)
    model = MobileSam()
    model.requires_grad_(False)
    enc.attach(model.image_encoder, "lora")  # freezes the encoder, LoRA r 4 at attn.qkv[q,v], mlp.fc1, mlp.fc2
    model.mask_decoder.requires_grad_(True)  # trainDecoder: the `peft train` default
    model.train()
    for m in model.modules():  # batch norm on its running statistics, as the TS BatchNorm2d
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
    return model


def make_batch():
    g = torch.Generator().manual_seed(1234)
    s, o = TINY["img_size"], TINY["img_size"] // 4
    images = torch.randn(BATCH, 3, s, s, generator=g)
    yy, xx = torch.meshgrid(torch.arange(o), torch.arange(o), indexing="ij")
    r = ((yy - o / 2) ** 2 + (xx - o / 2) ** 2).sqrt()
    targets = torch.stack([(r < o / 4).float(), (r < o / 8).float()]).unsqueeze(0).expand(BATCH, -1, -1, -1).contiguous()
    points = torch.full((BATCH, 1, 2), s / 2 - 0.5)  # a click on the cup, in image pixels
    labels = torch.ones(BATCH, 1)
    return images, targets, points, labels


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", default="1,2", help="torch thread counts to time in turn (OPENBLAS_NUM_THREADS=1)")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per thread count, after 3 warm-up steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--expect-trainable", type=int, default=EXPECTED["trainable"])
    ap.add_argument("--expect-total", type=int, default=EXPECTED["total"])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--list-parameters", action="store_true",
                    help="print `name shape T|-` (trainable or not) of every parameter, sorted, and exit")
    args = ap.parse_args(argv)
    threads = [int(x) for x in args.threads.split(",")]

    model = build(args.seed)
    if args.list_parameters:
        rows = (f"{n} {'x'.join(map(str, p.shape))} {'T' if p.requires_grad else '-'}" for n, p in model.named_parameters())
        print("\n".join(sorted(rows)))
        return 0
    params = [p for p in model.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params)
    total = sum(p.numel() for p in model.parameters())
    lora = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    problems = []
    if trainable != args.expect_trainable:
        problems.append(f"trainable parameters: torch {trainable} != peft train {args.expect_trainable}")
    if total != args.expect_total:
        problems.append(f"total parameters: torch {total} != peft train {args.expect_total}")

    images, targets, points, labels = make_batch()
    opt = torch.optim.Adam(params, lr=LR)
    pos_weight = torch.tensor(POS_WEIGHT)
    losses = []

    def step():
        logits = model(images, points, labels)
        loss = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())

    def timed(f):
        c0, t0 = time.process_time(), time.perf_counter()
        f()
        return (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3

    out_shape = list(model(images, points, labels).shape)
    if out_shape != list(targets.shape):
        problems.append(f"logits {out_shape} != targets {list(targets.shape)}")
    by_threads = {}
    for t in threads:
        torch.set_num_threads(t)
        for _ in range(3):
            step()  # warm-up (the first at each thread count)
        walls, cpus = zip(*(timed(step) for _ in range(max(1, args.steps))))
        by_threads[t] = dict(stepMs=round(statistics.median(walls), 2), stepCpuMs=round(statistics.median(cpus), 2),
                             stepMsAll=[round(x, 2) for x in walls])
    best = min(by_threads, key=lambda t: by_threads[t]["stepMs"])
    r = {
        "job": "mobile_sam tiny + lora (peft train defaults)",
        "framework": "torch",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "blas": enc.blas_info(),
        "batch": BATCH,
        "imageSize": TINY["img_size"],
        "logitsShape": out_shape,
        "trainableParameters": trainable,
        "totalParameters": total,
        "loraParameters": lora,
        "expected": dict(trainable=args.expect_trainable, total=args.expect_total),
        "countsMatch": not any("parameters" in p for p in problems),
        "problems": problems,
        "threads": best,
        "stepMs": by_threads[best]["stepMs"],
        "stepCpuMs": by_threads[best]["stepCpuMs"],
        "byThreads": by_threads,
        "peakRssMB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "loss": [float(f"{x:.6g}") for x in losses[:3] + losses[-1:]],
        "loadAvg": [round(x, 2) for x in os.getloadavg()],
    }
    for p in problems:
        sys.stderr.write(f"\n*** MISMATCH with peft train's main job: {p} ***\n")
    if args.json:
        print(json.dumps(r))
    else:
        print(f"main job step in torch: {r['stepMs']} ms (median of {args.steps}, {best} thread(s); "
              + ", ".join(f"{t}t {v['stepMs']} ms" for t, v in by_threads.items()) + ")")
        print(f"parameters: {trainable} trainable ({lora} LoRA) of {total}; peft train: "
              f"{args.expect_trainable} of {args.expect_total} -> {'match' if r['countsMatch'] else 'DO NOT MATCH'}")
        print(f"torch {r['torch']}, {r['blas']}; logits {out_shape}; load {r['loadAvg']}")
    return 2 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
