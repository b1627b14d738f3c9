"""ABD (Adversarial Backdoor Defense in CLIP): an AdvCLIP-style universal patch that carries
backdoor features, then fine-tuning on patched images and EDA captions.

Stage 1 (:func:`train_patch`), AdvCLIP's generator with ABD's extra loss.  A DCGAN generator maps
a fixed noise vector z (dim 100) to ONE universal patch of side sqrt(area) of the image side
(area 0.03), pasted bottom-right with AdvCLIP's margin (14/224 of the side).  A small
discriminator tells clean from patched images.  The generator minimises (AdvCLIP's objective,
weights as its public code: alpha 10, beta 5, gamma 5, delta 1, L2 weight 1; anchors.md)::

    L_G = L_gan + alpha * ( -NCE(f(x), f(x_adv)) - beta * NCE(f(x_adv), g(t)) )
          + l2_weight * mean((x_adv - x)^2)
          - delta * ( T(f(x) | f(x_adv)) + gamma * T(f(x_adv) | g(t)) )
          + lambda_bd * L_bd

with f / g the victim's image / text encoders, NCE the InfoNCE of AdvCLIP (temperature 0.1),
T AdvCLIP's topology divergence (:func:`topology_divergence`: how differently two feature sets
arrange the same batch into neighbourhoods; the generator *maximises* it, so patched images stop
sitting among the neighbours of their clean selves and of their captions), and ABD's Eq. 2
backdoor loss::

    L_bd = -1/B sum_i log exp(s(x_i, x_bd,i)/tau) / sum_j exp(s(x_i, x_bd,j)/tau)

where x_i is the CLEAN model's feature of adversarial image i and x_bd,i the POISONED model's:
it pulls the two encoders' views of the adversarial image together, so that the patch carries
what the backdoor adds.  ``lambda_bd = 0`` is the plain UAP of ABD's Table III.

How the patch is read off the generator (``patch_mode``).  AdvCLIP's ``advclip.py`` never calls
``G.eval()``: the patch it saves each epoch (``uap_noise``, ``torch.save``) is the output ``G(z)`` of
its last generator step, computed in training mode, so its BatchNorm layers normalise with the
statistics of the current forward pass (there: its 16 fixed noise vectors; here: the one z's 4x4
positions), not with the running averages.  Every loss above is computed on that training-mode
output, so it is the patch the generator was optimised to produce; the running averages lag the
weights (BatchNorm momentum 0.1) and give another patch.  ``patch_mode: train`` (the default)
reads the trained generator that way (final weights, no update of the running statistics);
``eval`` reads it with the running averages (what this module did before issue 23), kept as an
ablation.

The control (``patch_source: random``): instead of the adversarial patch, a uniform-noise patch of
the same side and place, drawn once per seed and never trained, as AdvCLIP draws its initial patch
(``utils/patch_utils.py``: ``patch_initialization`` = ``np.random.rand(3, s, s)`` with
s = int(sqrt(0.03 * 224^2)), pasted by ``mask_generation`` bottom-right with a 14 px margin).  Its
fine-tuning rows show what any patch of that size and place does, so that the adversarial patch's
rows can be read against it (ABD Sec. II-B claims the patch carries backdoor features; the paper
has no such control).

Stage 2 (:func:`plan`): fine-tuning with the CLIP loss where each image carries the patch with
probability ``p_patch`` (ABD's I_adv) and each caption is replaced by an EDA view with
probability ``p_eda`` (T_eda); Table II's variants switch either off.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from paperlib.config import param
from paperlib.defences.base import DefenceContext, DefencePlan, step_rng

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ABDConfig:
    patch_area: float = param(0.03, range=(1e-4, 1.0), doc="patch area / image area (AdvCLIP: 0.03)")
    margin_fraction: float = param(14 / 224, range=(0.0, 0.5), doc="gap between patch and the border")
    z_dim: int = param(100, range=(1, None), doc="generator noise dimension")
    alpha: float = param(10.0, range=(0.0, None), doc="AdvCLIP adversarial weight")
    beta: float = param(5.0, range=(0.0, None), doc="AdvCLIP cross-modal weight")
    gamma: float = param(5.0, range=(0.0, None), doc="AdvCLIP weight of the image-text topology term")
    delta: float = param(1.0, range=(0.0, None), doc="AdvCLIP weight of both topology terms (0 = none)")
    l2_weight: float = param(1.0, range=(0.0, None), doc="weight of the patch's mean squared change (AdvCLIP: 1)")
    lambda_bd: float = param(1.0, range=(0.0, None),
                             doc="ABD backdoor loss weight (0 = plain UAP; the paper gives no weight: its Eq. 2 is "
                                 "added to AdvCLIP's loss, whose InfoNCE terms weigh alpha = 10 and alpha * beta = 50)")
    patch_mode: str = param("train", choices=("train", "eval"),
                            doc="how the patch is read off the trained generator: 'train' = BatchNorm with the "
                                "forward pass's own statistics, as AdvCLIP saves G(z) (it never calls G.eval()); "
                                "'eval' = BatchNorm running averages (an ablation)")
    patch_source: str = param("adversarial", choices=("adversarial", "random"),
                              doc="'adversarial' = the generator's patch (ABD); 'random' = the control: a "
                                  "uniform-noise patch of the same side and place, never trained (AdvCLIP's "
                                  "patch_initialization draws np.random.rand(3, s, s))")
    temperature: float = param(0.1, range=(1e-4, 10.0), doc="InfoNCE temperature of AdvCLIP / L_bd")
    gan_epochs: float = param(5.0, range=(0.0, None), doc="passes of the generator over its images")
    gan_images: int = param(2000, range=(1, None), doc="clean pairs the generator trains on")
    gan_batch: int = param(16, range=(2, None), doc="generator batch size (AdvCLIP / ABD: 16)")
    gan_lr: float = param(2e-4, range=(0.0, 1.0), doc="Adam lr of generator and discriminator")
    p_patch: float = param(0.5, range=(0.0, 1.0), doc="share of fine-tuning images given the patch (I_adv)")
    p_eda: float = param(0.5, range=(0.0, 1.0), doc="share of captions replaced by an EDA view (T_eda)")
    eda_alpha: float = param(0.1, range=(0.0, 1.0), doc="EDA rates")


def patch_geometry(image_side: int, area: float, margin_fraction: float) -> tuple[int, int]:
    """(side, top-left offset) of the bottom-right patch: 38 px and 14 px margin at 224 (AdvCLIP)."""
    side = max(1, int(math.sqrt(area) * image_side))
    margin = int(round(margin_fraction * image_side))
    return side, max(0, image_side - side - margin)


def apply_patch(images: torch.Tensor, patch: torch.Tensor, offset: int) -> torch.Tensor:
    """Images (B,3,H,W, float 0-255 or uint8) with the (3,s,s) patch at ``offset`` (same dtype)."""
    s = patch.shape[-1]
    out = images.clone()
    out[:, :, offset:offset + s, offset:offset + s] = patch.to(out.dtype)
    return out


class PatchGenerator(nn.Module):
    """DCGAN-style: z -> 4x4x128 -> transposed convolutions -> patch in [0, 255]."""

    def __init__(self, z_dim: int, side: int):
        super().__init__()
        self.side = side
        self.fc = nn.Linear(z_dim, 128 * 4 * 4)
        self.net = nn.Sequential(
            nn.BatchNorm2d(128), nn.ReLU(True),
            nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.ReLU(True),
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.BatchNorm2d(32), nn.ReLU(True),
            nn.Conv2d(32, 3, 3, 1, 1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.net(self.fc(z).view(-1, 128, 4, 4))
        x = F.interpolate(x, size=(self.side, self.side), mode="bilinear", align_corners=False)
        return (x + 1) * 127.5


class PatchDiscriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(32, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.LeakyReLU(0.2, True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x / 127.5 - 1).squeeze(1)


def read_patch(G: PatchGenerator, z: torch.Tensor, mode: str = "train") -> torch.Tensor:
    """The generator's patch for ``z`` (float, 0-255, shape (len(z), 3, s, s)), without gradients.

    ``mode="train"``: BatchNorm normalises with the statistics of this forward pass, as AdvCLIP's
    saved patch was computed (``advclip.py`` keeps its generator in training mode throughout and
    saves ``uap_noise = G(z)`` of the last generator step); the running averages are left as they
    were.  ``mode="eval"``: BatchNorm uses the running averages.  The generator's own mode and
    buffers are unchanged on return.
    """
    if mode not in ("train", "eval"):
        raise ValueError(f"patch mode {mode!r}: 'train' or 'eval'")
    was_training = G.training
    buffers = {k: v.clone() for k, v in G.named_buffers()}
    try:
        G.train(mode == "train")
        with torch.no_grad():
            return G(z)
    finally:
        G.train(was_training)
        with torch.no_grad():
            for k, v in G.named_buffers():
                v.copy_(buffers[k])


def random_patch(image_side: int, cfg: ABDConfig, seed: int) -> tuple[torch.Tensor, dict]:
    """The control patch (``patch_source: random``): uniform noise over 0..255 (uint8, 3 x s x s) at
    the adversarial patch's side and offset (:func:`patch_geometry`), drawn from ``seed`` and never
    trained.  AdvCLIP's ``patch_initialization`` draws ``np.random.rand(3, s, s)`` (uniform), and its
    ``mask_generation`` places it bottom-right with a 14 px margin at 224 px, as here."""
    side, offset = patch_geometry(image_side, cfg.patch_area, cfg.margin_fraction)
    rng = np.random.default_rng([int(seed), 57])
    patch = torch.from_numpy(rng.integers(0, 256, (3, side, side), dtype=np.uint8))
    return patch, {"side": side, "offset": offset, "steps": 0, "history": [], "seconds": 0.0,
                   "source": "random"}


def nce(a: torch.Tensor, b: torch.Tensor, tau: float) -> torch.Tensor:
    """One-way InfoNCE: row i of ``a`` must pick row i of ``b`` (normalised features)."""
    return F.cross_entropy(a @ b.t() / tau, torch.arange(len(a), device=a.device))


def neighbourhood_distribution(feats: torch.Tensor) -> torch.Tensor:
    """Row-stochastic (B, B) matrix: how each sample of a batch spreads its similarity over the batch.

    AdvCLIP's construction: cosine distances d_ij = 1 - cos(f_i, f_j); each row is shifted so that
    the sample's nearest *other* sample is at distance 0 (the diagonal is kept at 0); similarities
    1 - d are mapped from [-1, 1] to [0, 1] and each row is normalised to sum to one.
    """
    f = F.normalize(feats.float(), dim=-1)
    dist = 1 - f @ f.t()
    eye = torch.eye(len(f), dtype=torch.bool, device=f.device)
    nearest = dist.masked_fill(eye, float("inf")).min(dim=1, keepdim=True).values
    dist = (dist - nearest).masked_fill(eye, 0.0)
    sim = (2 - dist) / 2                  # ((1 - d) + 1) / 2
    return sim / sim.sum(dim=1, keepdim=True)


def topology_divergence(output: torch.Tensor, target: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """AdvCLIP's topology term T(output | target): the binary cross-entropy style divergence
    sum_ij [ P_ij log(P_ij / Q_ij) + (1 - P_ij) log((1 - P_ij) / (1 - Q_ij)) ] between the
    neighbourhood distributions P of ``target`` and Q of ``output`` (summed, not averaged, as
    AdvCLIP does).  Zero when both feature sets arrange the batch alike."""
    p, q = neighbourhood_distribution(target), neighbourhood_distribution(output)

    def kl(a, b):
        return (a * ((a + eps).log() - (b + eps).log())).sum()
    return kl(p, q) + kl(1 - p, 1 - q)


def backdoor_loss(clean_feats: torch.Tensor, poisoned_feats: torch.Tensor, tau: float) -> torch.Tensor:
    """ABD's Eq. 2: InfoNCE pulling the clean model's and the poisoned model's features of the
    same adversarial image together."""
    return nce(F.normalize(clean_feats, dim=-1), F.normalize(poisoned_feats, dim=-1), tau)


def train_patch(victim: nn.Module, clean: nn.Module | None, images: torch.Tensor, tokens: torch.Tensor,
                cfg: ABDConfig, seed: int, device, log_every: int = 50) -> tuple[torch.Tensor, dict]:
    """Stage 1: the universal patch (uint8, 3 x s x s) and a record of the losses."""
    import time

    from paperlib.progress import bar as progress_bar

    from paperlib.models import normalize_images
    t0 = time.time()
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    side, offset = patch_geometry(images.shape[-1], cfg.patch_area, cfg.margin_fraction)
    G, D = PatchGenerator(cfg.z_dim, side).to(device), PatchDiscriminator().to(device)
    opt_g = torch.optim.Adam(G.parameters(), cfg.gan_lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), cfg.gan_lr, betas=(0.5, 0.999))
    z = torch.randn(1, cfg.z_dim, generator=g).to(device)
    for m in (victim, clean):
        if m is not None:
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)
    enc = lambda m, x: F.normalize(m.encode_image(normalize_images(x / 255.0)).float(), dim=-1)  # noqa: E731
    n = len(images)
    steps = max(1, int(math.ceil(cfg.gan_epochs * n / cfg.gan_batch)))
    history = []
    bar = progress_bar(range(steps), desc="ABD patch", unit="step", mininterval=5)
    for step in bar:
        idx = torch.randint(0, n, (cfg.gan_batch,), generator=g)
        x = images[idx].to(device).float()
        t = tokens[idx].to(device)
        patch = G(z)[0]
        x_adv = apply_patch(x, patch, offset)
        # discriminator: clean images real, patched images fake
        d_loss = (F.binary_cross_entropy_with_logits(D(x), torch.ones(len(x), device=device))
                  + F.binary_cross_entropy_with_logits(D(x_adv.detach()), torch.zeros(len(x), device=device)))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        # generator
        f_x, f_adv = enc(victim, x), enc(victim, x_adv)
        with torch.no_grad():
            g_t = F.normalize(victim.encode_text(t).float(), dim=-1)
        gan = F.binary_cross_entropy_with_logits(D(x_adv), torch.ones(len(x), device=device))
        adv = -nce(f_x, f_adv, cfg.temperature) - cfg.beta * nce(f_adv, g_t, cfg.temperature)
        l2 = ((x_adv - x) / 255.0).pow(2).mean()
        topo = torch.zeros((), device=device)
        if cfg.delta > 0:
            topo = -(topology_divergence(f_x, f_adv) + cfg.gamma * topology_divergence(f_adv, g_t))
        loss = gan + cfg.alpha * adv + cfg.l2_weight * l2 + cfg.delta * topo
        l_bd = torch.zeros((), device=device)
        if cfg.lambda_bd > 0 and clean is not None:
            l_bd = backdoor_loss(enc(clean, x_adv), f_adv, cfg.temperature)
            loss = loss + cfg.lambda_bd * l_bd
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        if step % log_every == 0 or step == steps - 1:
            rec = {"step": step, "gan": float(gan.detach()), "adv": float(adv.detach()), "l2": float(l2.detach()),
                   "topology": float(topo.detach()),
                   "l_bd": float(l_bd.detach()), "d": float(d_loss.detach())}
            history.append(rec)
            bar.set_postfix({k: f"{v:.3f}" for k, v in rec.items() if k != "step"})
    # AdvCLIP saves the training-mode output (patch_mode "train"); "eval" reads the running averages
    patch = read_patch(G, z, cfg.patch_mode)[0].round().clamp(0, 255).to(torch.uint8).cpu()
    return patch, {"side": side, "offset": offset, "steps": steps, "history": history,
                   "seconds": time.time() - t0, "patch_mode": cfg.patch_mode}


class PatchAndEDA:
    """Stage 2 batch transform: the patch on a ``p_patch`` share of images, EDA captions on a
    ``p_eda`` share (fresh draws every step)."""

    def __init__(self, patch: torch.Tensor, offset: int, p_patch: float, p_eda: float, eda, tokenizer):
        self.patch, self.offset = patch, offset
        self.p_patch, self.p_eda = p_patch, p_eda
        self.eda, self.tokenizer = eda, tokenizer

    def __call__(self, batch: dict, step: int, generator: torch.Generator) -> dict:
        rng = step_rng(generator)
        images = batch["images"]
        B = len(images)
        if self.p_patch > 0:
            rows = torch.from_numpy(np.flatnonzero(rng.random(B) < self.p_patch)).to(images.device)
            if len(rows):
                images = images.clone()
                images[rows] = apply_patch(images[rows], self.patch.to(images.device), self.offset)
                batch["images"] = images
        if self.p_eda > 0:
            rows = np.flatnonzero(rng.random(B) < self.p_eda)
            if len(rows):
                new = self.tokenizer(self.eda([batch["texts"][i] for i in rows], rng)).to(batch["tokens"].device)
                tokens = batch["tokens"].clone()
                tokens[torch.from_numpy(rows).to(tokens.device)] = new
                batch["tokens"] = tokens
        return batch


def plan(cfg: ABDConfig, ctx: DefenceContext) -> DefencePlan:
    """Train (or load from the cache) the patch against the victim, then the fine-tuning plan."""
    from paperlib.text.eda import EDAAugmenter
    from paperlib.train.losses import ClipLossTerm
    patch, info = abd_patch(cfg, ctx)
    a = cfg.eda_alpha
    eda = EDAAugmenter(None, a, a, a, a)
    tf = PatchAndEDA(patch, info["offset"], cfg.p_patch, cfg.p_eda, eda, ctx.tokenizer)
    return DefencePlan(terms=[(ClipLossTerm(), 1.0)], transforms=[tf],
                       info={"patch_side": info["side"], "gan_steps": info["steps"],
                             "prep_seconds": info.get("seconds", 0.0), "patch_source": cfg.patch_source,
                             "patch_mode": cfg.patch_mode,
                             "gan_final": info["history"][-1] if info["history"] else {}})


def gan_rows(cfg: ABDConfig, ctx: DefenceContext) -> np.ndarray:
    """Positions in the clean pair set of the images the patch GAN trains on."""
    n = len(ctx.pairs)
    return np.sort(np.random.default_rng([ctx.seed, 55]).choice(n, size=min(cfg.gan_images, n), replace=False))


def gan_scenes_digest(ctx: DefenceContext, rows: np.ndarray) -> str:
    """Which scenes the GAN sees, for the patch's cache key: the clean set (its size, which scenes)
    decides them, and two clean sets must not share a patch."""
    import hashlib
    scenes = np.asarray(getattr(ctx.pairs, "rows", np.arange(len(ctx.pairs))), np.int64)[rows]
    return hashlib.sha256(np.ascontiguousarray(scenes).tobytes()).hexdigest()[:16]


def abd_patch(cfg: ABDConfig, ctx: DefenceContext) -> tuple[torch.Tensor, dict]:
    """The stage-1 patch, cached under the victim's key, the clean model's key and ``cfg``; with
    ``patch_source: random`` the control patch (:func:`random_patch`, no generator, nothing cached)."""
    import json
    from dataclasses import asdict

    from safetensors.torch import save_file

    from paperlib.cache import ArtifactCache, write_json_atomic
    from paperlib.models import read_safetensors
    if cfg.patch_source == "random":
        image_side = int(ctx.pairs.fetch(np.arange(1))["images"].shape[-1])
        return random_patch(image_side, cfg, ctx.seed)
    cache = ctx.cache or ArtifactCache()
    gan_keys = ("patch_area", "margin_fraction", "z_dim", "alpha", "beta", "gamma", "delta", "l2_weight",
                "lambda_bd", "temperature", "gan_epochs", "gan_images", "gan_batch", "gan_lr", "patch_mode")
    rows = gan_rows(cfg, ctx)
    key = {"role": "abd_patch", "victim": ctx.victim.key_params,
           "clean": ctx.clean_base.key_params if ctx.clean_base is not None else None,
           "cfg": {k: v for k, v in asdict(cfg).items() if k in gan_keys}, "seed": ctx.seed,
           "gan_scenes": gan_scenes_digest(ctx, rows)}

    def build(work):
        victim = ctx.victim.load(ctx.device)
        clean = ctx.clean_base.load(ctx.device) if (ctx.clean_base is not None and cfg.lambda_bd > 0) else None
        batch = ctx.pairs.fetch(rows)
        patch, info = train_patch(victim, clean, batch["images"], batch["tokens"], cfg, ctx.seed, ctx.device)
        save_file({"patch": patch.contiguous()}, str(work / "patch.safetensors"))
        write_json_atomic(work / "info.json", info)

    path = cache.get_or_build("abd", key, build)
    return read_safetensors(path / "patch.safetensors")["patch"], json.loads((path / "info.json").read_text())
