"""Regenerates the small `tinyvit.TinyViT` fixtures beside this file (sam_adpt,
every window path of the attention block). Not needed to run the tests; needs
PyTorch (Debian: apt-get install python3-torch). Run: python3 make_tinyvit_paths.py

Written from the fixtures' README and Medical-SAM-Adapter's TinyViTAdapterBlock:
- one window (grid == window): attention only, no Space_Adapter;
- otherwise: zero-pad to whole windows, attention and Space_Adapter per window,
  crop; then local_conv and `x + mlp(x) + 0.5 * MLP_Adapter(x)`.

Gradients are computed in float64 and checked here against central finite
differences. PyTorch's CPU batch-norm backward (seen in 1.13) reads a
channels-last grad_output as if it were contiguous when the input is
contiguous and the batch is 1 — which is what the adapter block's
`view(B, C, L).transpose(1, 2)` hands it — so every Conv2d_BN below makes its
incoming gradients contiguous first. Without that, the adapters upstream of a
local_conv get wrong gradients (the shared fixture `tinyvit_adapter` holds such
values: its stored grads disagree with the finite differences of its own model).
"""
import itertools
import json
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


def contiguous_grads(t):
    if t.requires_grad:
        t.register_hook(lambda g: g.contiguous())
    return t


class ConvBN(nn.Module):
    def __init__(self, cin, cout, k=1, stride=1, pad=0, groups=1):
        super().__init__()
        self.c = nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return contiguous_grads(self.bn(contiguous_grads(self.c(x))))


class Adapter(nn.Module):
    def __init__(self, dim, skip):
        super().__init__()
        self.skip = skip
        self.D_fc1 = nn.Linear(dim, int(dim * 0.25))
        self.D_fc2 = nn.Linear(int(dim * 0.25), dim)

    def forward(self, x):
        h = self.D_fc2(F.gelu(self.D_fc1(x)))
        return x + h if self.skip else h


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class Attention(nn.Module):
    """LeViT-style: per-head [q, k, v] layout in qkv, learned bias per window offset."""

    def __init__(self, dim, heads, ws):
        super().__init__()
        self.heads, self.d = heads, dim // heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        pts = list(itertools.product(range(ws), range(ws)))
        offsets, idxs = {}, []
        for a in pts:
            for b in pts:
                o = (abs(a[0] - b[0]), abs(a[1] - b[1]))
                idxs.append(offsets.setdefault(o, len(offsets)))
        self.attention_biases = nn.Parameter(torch.zeros(heads, len(offsets)))
        self.idxs = torch.tensor(idxs).view(len(pts), len(pts))

    def forward(self, x):
        n, t, _ = x.shape
        q, k, v = self.qkv(self.norm(x)).view(n, t, self.heads, 3 * self.d).split(self.d, dim=3)
        q, k, v = (z.permute(0, 2, 1, 3) for z in (q, k, v))
        a = (q @ k.transpose(-2, -1)) * self.d**-0.5 + self.attention_biases[:, self.idxs]
        return self.proj((a.softmax(-1) @ v).transpose(1, 2).reshape(n, t, -1))


class Block(nn.Module):
    def __init__(self, dim, res, heads, ws, mlp_ratio, lcs):
        super().__init__()
        self.res, self.ws = res, ws
        self.attn = Attention(dim, heads, ws)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.MLP_Adapter = Adapter(dim, False)
        self.Space_Adapter = Adapter(dim, True)
        self.Depth_Adapter = Adapter(dim, False)  # in the reference's state dict, never used in 2-D
        self.local_conv = ConvBN(dim, dim, lcs, 1, lcs // 2, groups=dim)

    def forward(self, x):
        (h, w), ws = self.res, self.ws
        b, l, c = x.shape
        if h == ws and w == ws:
            a = self.attn(x)
        else:
            pb, pr = (ws - h % ws) % ws, (ws - w % ws) % ws
            y = F.pad(x.view(b, h, w, c), (0, 0, 0, pr, 0, pb))
            nh, nw = (h + pb) // ws, (w + pr) // ws
            y = y.view(b, nh, ws, nw, ws, c).transpose(2, 3).reshape(b * nh * nw, ws * ws, c)
            y = self.Space_Adapter(self.attn(y))
            y = y.view(b, nh, nw, ws, ws, c).transpose(2, 3).reshape(b, h + pb, w + pr, c)
            a = y[:, :h, :w].reshape(b, l, c)
        x = self.local_conv((x + a).transpose(1, 2).reshape(b, c, h, w)).view(b, c, l).transpose(1, 2)
        return x + self.mlp(x) + 0.5 * self.MLP_Adapter(x)


class MBConv(nn.Module):
    def __init__(self, dim, ratio):
        super().__init__()
        hid = int(dim * ratio)
        self.conv1, self.conv2, self.conv3 = ConvBN(dim, hid), ConvBN(hid, hid, 3, 1, 1, hid), ConvBN(hid, dim)

    def forward(self, x):
        return F.gelu(self.conv3(F.gelu(self.conv2(F.gelu(self.conv1(x))))) + x)


class Merge(nn.Module):
    def __init__(self, res, dim, out):
        super().__init__()
        self.res = res
        stride = 1 if out in (320, 448, 576) else 2
        self.conv1, self.conv2, self.conv3 = ConvBN(dim, out), ConvBN(out, out, 3, stride, 1, out), ConvBN(out, out)

    def forward(self, x):
        if x.ndim == 3:
            x = x.view(x.shape[0], *self.res, -1).permute(0, 3, 1, 2)
        return self.conv3(F.gelu(self.conv2(F.gelu(self.conv1(x))))).flatten(2).transpose(1, 2)


class Stage(nn.Module):
    def __init__(self, blocks, down):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = down

    def forward(self, x):
        for blk in self.blocks:
            x = blk(x)
        return self.downsample(x) if self.downsample is not None else x


class LayerNorm2d(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(c)), nn.Parameter(torch.zeros(c))

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        v = (x - u).pow(2).mean(1, keepdim=True)
        return self.weight[:, None, None] * (x - u) / torch.sqrt(v + 1e-6) + self.bias[:, None, None]


class TinyViT(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c['embed_dims']
        self.patch_embed = nn.Module()
        self.patch_embed.seq = nn.Sequential(ConvBN(3, d[0] // 2, 3, 2, 1), nn.GELU(), ConvBN(d[0] // 2, d[0], 3, 2, 1))
        r = -(-c['img_size'] // 4)
        self.layers = nn.ModuleList()
        for i, dim in enumerate(d):
            if i == 0:
                blocks = [MBConv(dim, c['mbconv_expand_ratio']) for _ in range(c['depths'][0])]
            else:
                blocks = [Block(dim, (r, r), c['num_heads'][i], c['window_sizes'][i], c['mlp_ratio'], c['local_conv_size'])
                          for _ in range(c['depths'][i])]
            down = None
            if i + 1 < len(d):
                down = Merge((r, r), dim, d[i + 1])
                if down.conv2.c.stride[0] == 2:
                    r = (r - 1) // 2 + 1
            self.layers.append(Stage(blocks, down))
        self.grid = r
        self.norm_head = nn.LayerNorm(d[-1])
        o = c['out_chans']
        self.neck = nn.Sequential(nn.Conv2d(d[-1], o, 1, bias=False), LayerNorm2d(o), nn.Conv2d(o, o, 3, padding=1, bias=False), LayerNorm2d(o))

    def forward(self, x):
        x = self.patch_embed.seq(x)
        for layer in self.layers:
            x = layer(x)
        b, _, c = x.shape
        return self.neck(x.view(b, self.grid, self.grid, c).permute(0, 3, 1, 2))


def randomise(model, gen):
    """Weights of unit-ish scale so every stage's adapters get gradients well above the tolerance."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('bn.weight') or name.endswith('norm.weight') or name.startswith('neck.') and name.endswith('weight') and p.ndim == 1:
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
            elif p.ndim == 1:
                p.copy_((torch.rand(p.shape, generator=gen) - 0.5) * 0.2)
            elif name.endswith('attention_biases'):
                p.copy_(torch.rand(p.shape, generator=gen) - 0.5)
            else:
                fan_in = p[0].numel()
                p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * (3 / fan_in) ** 0.5)
        for name, buf in model.named_buffers():
            if name.endswith('running_mean'):
                buf.copy_((torch.rand(buf.shape, generator=gen) - 0.5) * 0.2)
            elif name.endswith('running_var'):
                buf.copy_(torch.rand(buf.shape, generator=gen) + 0.5)
        # round to float32 so the stored parameters are exactly the ones differentiated
        for t in itertools.chain(model.parameters(), model.buffers()):
            if t.is_floating_point():
                t.copy_(t.float().double())


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for k, v in tensors.items():
        a = np.ascontiguousarray(v.detach().cpu().numpy().astype('<f4'))
        header[k] = {'dtype': 'F32', 'shape': list(a.shape), 'data_offsets': [off, off + a.nbytes]}
        off += a.nbytes
        blobs.append(a.tobytes())
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))


BASE = dict(mlp_ratio=2.0, mbconv_expand_ratio=2.0, local_conv_size=3, out_chans=16)

CASES = {
    # stage 1: 4x4 grid, window 4 (one window, no Space_Adapter); stage 2: 2x2 grid, window 2 (one window)
    'tinyvit_paths_one_window': dict(batch=1, img_size=32, embed_dims=[8, 16, 24], depths=[1, 1, 2], num_heads=[1, 2, 3], window_sizes=[4, 4, 2]),
    # stage 1: 6x6 grid, window 4 (padded to 8, four windows); stage 2: 3x3 grid, window 5 (smaller: one padded window)
    'tinyvit_paths_padded': dict(batch=2, img_size=48, embed_dims=[8, 16, 24], depths=[1, 2, 1], num_heads=[1, 2, 3], window_sizes=[4, 4, 5]),
    # stage 1: 8x8, window 2 (sixteen windows); stage 2: 4x4, window 4 (one window);
    # stage 3: 2x2, window 3 (smaller, padded); a 5x5 local conv
    'tinyvit_paths_deep': dict(batch=1, img_size=64, embed_dims=[8, 12, 16, 20], depths=[1, 1, 3, 2], num_heads=[1, 2, 2, 4],
                               window_sizes=[2, 2, 4, 3], local_conv_size=5),
}


def make(name, case, seed):
    gen = torch.Generator().manual_seed(seed)
    batch = case.pop('batch')
    config = {**BASE, **case}
    model = TinyViT(config).eval()
    randomise(model, gen)
    x = torch.randn(batch, 3, config['img_size'], config['img_size'], generator=gen).float().double()
    y = model(x)
    upstream = torch.randn(y.shape, generator=gen).float().double()
    params = dict(model.named_parameters())
    adapters = {k: p for k, p in params.items() if '_Adapter.' in k and 'Depth_Adapter' not in k}
    loss = (y * upstream).sum()
    grads = torch.autograd.grad(loss, list(adapters.values()), allow_unused=True)
    grads = {k: (g if g is not None else torch.zeros_like(adapters[k])) for k, g in zip(adapters, grads)}
    # every adapter gradient is the derivative of the model: a directional finite difference per tensor
    with torch.no_grad():
        for k, p in adapters.items():
            v = torch.randn(p.shape, generator=gen)
            eps = 1e-6
            p.add_(eps * v)
            lp = (model(x) * upstream).sum()
            p.sub_(2 * eps * v)
            lm = (model(x) * upstream).sum()
            p.add_(eps * v)
            fd, an = float((lp - lm) / (2 * eps)), float((grads[k] * v).sum())
            assert abs(fd - an) <= 1e-6 * (1 + abs(fd)), f'{name} {k}: finite difference {fd} != autograd {an}'
    small = min(float(g.abs().max()) for k, g in grads.items() if g.abs().max() > 0)
    tensors = {f'param/{k}': t for k, t in model.state_dict().items() if t.is_floating_point()}
    tensors['input/x'] = x
    tensors['input/upstream'] = upstream
    tensors['output/y'] = y
    tensors.update({f'grad/{k}': g for k, g in grads.items()})
    write_safetensors(f'{name}.safetensors', tensors)
    meta = {
        'kind': 'tinyvit.TinyViT',
        'config': {**config, 'mod': 'sam_adpt', 'batchnorm': 'eval'},
        'atol': 5e-3,
        'rtol': 1e-3,
        'trainable': 'the Space_ and MLP_Adapters (zeros where a block runs on one window: no Space_Adapter there)',
    }
    with open(f'{name}.json', 'w') as f:
        json.dump(meta, f, indent=2)
        f.write('\n')
    print(f'{name}: y {list(y.shape)}, {len(grads)} adapter grads, smallest max|grad| {small:.2e}')


if __name__ == '__main__':
    for i, (name, case) in enumerate(CASES.items()):
        make(name, dict(case), 1000 + i)
