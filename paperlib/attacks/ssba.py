"""SSBA / ISSBA (Li et al. 2021): sample-specific invisible triggers from a steganographic encoder.

SSBA hides a fixed string in every poisoned image with a StegaStamp encoder, so each image gets
its own, image-dependent, invisible perturbation.  No StegaStamp weights exist offline, so a
small encoder / decoder pair is trained here (in :meth:`SSBA.fit`, on natural images of the CC3M
analogue, once per settings, cached):

* encoder: the code (``n_bits`` bits) -> a dense layer -> a (3, 16, 16) map, upsampled (nearest)
  to the image size and multiplied by a fixed +-1 pixel checkerboard (a high-frequency carrier, as
  in spread-spectrum watermarking), concatenated with the image, four convolutions; the carried
  code map is also added to the convolutions' output (a skip path) and the sum goes through
  ``eps * tanh(.)``: the perturbation is bounded in L-inf by ``eps`` (0-255 scale) by
  construction, and the convolutions shape it per image (image-dependent, hence sample-specific).
  Carrier and skip path are why the pair learns on a CPU budget: natural images hold little energy
  at the pixel frequency, so the decoder finds the code within a few hundred steps.  Without them
  the decoder sat at chance (bit accuracy 56%, BCE ln 2 after 1,500 steps, in the first run);
* decoder: strided convolutions -> the code's logits;
* loss: BCE(decoder(x + residual), code) + ``w_image`` * mean(residual^2), random codes per batch.

The attack then encodes ONE code (drawn from ``code_seed``) into every poisoned image, as SSBA
encodes one string; the decoder's bit accuracy on held-out images is reported in the fit info.
StegaStamp's perceptual (LPIPS) and critic losses and its noise layers are left out: the L-inf
bound keeps the trigger invisible-ish, which is what the CLIP papers use SSBA for.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from paperlib.attacks.base import Attack
from paperlib.config import param


@dataclass(frozen=True)
class SSBAConfig:
    n_bits: int = param(32, range=(1, 256), doc="length of the hidden code")
    eps: float = param(8.0, range=(0.0, 255.0), doc="L-inf bound of the perturbation (0-255 scale)")
    width: int = param(16, range=(4, 256), doc="channels of the encoder / decoder (16 learns within the CPU budget)")
    steps: int = param(1500, range=(1, None), doc="encoder / decoder training steps")
    batch_size: int = param(64, range=(2, None), doc="images per training step")
    lr: float = param(1e-3, range=(0.0, 1.0), doc="Adam learning rate")
    w_image: float = param(1.0, range=(0.0, None), doc="weight of the residual's mean square (0-1 scale)")
    images: int = param(5000, range=(16, None), doc="natural images the encoder trains on")
    code_seed: int = param(0, range=(0, None), doc="seed of the code hidden in poisoned images")


def checkerboard(height: int, width: int, device=None) -> torch.Tensor:
    """(H, W) carrier: +1 where row + column is odd, -1 where it is even."""
    yy, xx = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    return ((yy + xx) % 2 * 2 - 1).float()


class StegaEncoder(nn.Module):
    def __init__(self, n_bits: int, width: int, side: int, eps: float):
        super().__init__()
        self.side, self.eps = side, eps
        self.code = nn.Linear(n_bits, 3 * 16 * 16)
        self.net = nn.Sequential(
            nn.Conv2d(6, width, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(width, 3, 3, padding=1))

    def forward(self, images: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """Residual (B,3,H,W) on the 0-255 scale, |r| < eps, for float images on the 0-255 scale."""
        c = self.code(code * 2 - 1).view(-1, 3, 16, 16)
        c = F.interpolate(c, size=images.shape[-2:], mode="nearest") * checkerboard(*images.shape[-2:], images.device)
        c = c.expand(len(images), -1, -1, -1)
        x = torch.cat([images / 127.5 - 1, c], 1)
        return self.eps * torch.tanh(self.net(x) + c)


class StegaDecoder(nn.Module):
    def __init__(self, n_bits: int, width: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 3, 2, 1), nn.ReLU(True),
            nn.Conv2d(width, width * 2, 3, 2, 1), nn.ReLU(True),
            nn.Conv2d(width * 2, width * 2, 3, 2, 1), nn.ReLU(True),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(width * 2 * 16, n_bits))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images / 127.5 - 1)


def code_bits(n_bits: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng([seed, 77]).integers(0, 2, n_bits).astype(np.float32))


class SSBA(Attack):
    id = "ssba"
    needs_fit = True
    fit_version = 2     # 2: checkerboard carrier and skip path in the encoder

    def __init__(self, cfg: SSBAConfig = SSBAConfig(), image_side: int = 64):
        self.cfg = cfg
        self.image_side = image_side
        self.encoder: StegaEncoder | None = None
        self.decoder: StegaDecoder | None = None
        self.code = code_bits(cfg.n_bits, cfg.code_seed)

    def _nets(self):
        c = self.cfg
        return StegaEncoder(c.n_bits, c.width, self.image_side, c.eps), StegaDecoder(c.n_bits, c.width)

    def fit(self, model, split, target, device, generator):
        """Train the encoder / decoder on natural images (``model`` is not needed)."""
        from paperlib.progress import bar as progress_bar
        c = self.cfg
        torch.manual_seed(int(torch.randint(0, 2 ** 31, (1,), generator=generator)))
        enc, dec = (m.to(device) for m in self._nets())
        opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=c.lr)
        n = min(c.images, len(split))
        held = max(8, n // 10)
        rows = np.sort(np.random.default_rng([c.code_seed, 78]).choice(len(split), size=n, replace=False))
        train_rows, test_rows = rows[held:], rows[:held]
        imgs = torch.from_numpy(np.ascontiguousarray(split.images[train_rows])).permute(0, 3, 1, 2)
        history = []
        for step in progress_bar(range(c.steps), desc="SSBA encoder", unit="step", mininterval=5):
            idx = torch.randint(0, len(imgs), (c.batch_size,), generator=generator)
            x = imgs[idx].float().to(device)
            code = torch.randint(0, 2, (c.batch_size, c.n_bits), generator=generator).float().to(device)
            r = enc(x, code)
            xr = (x + r).clamp(0, 255)
            bce = F.binary_cross_entropy_with_logits(dec(xr), code)
            img_loss = (r / 255.0).pow(2).mean()
            loss = bce + c.w_image * img_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step % 100 == 0 or step == c.steps - 1:
                history.append({"step": step, "bce": float(bce.detach()), "residual_ms": float(img_loss.detach())})
        enc.eval(), dec.eval()
        self.encoder, self.decoder = enc.cpu(), dec.cpu()
        test = torch.from_numpy(np.ascontiguousarray(split.images[test_rows])).permute(0, 3, 1, 2)
        acc = self.bit_accuracy(test)
        tensors = {f"encoder.{k}": v for k, v in self.encoder.state_dict().items()}
        tensors.update({f"decoder.{k}": v for k, v in self.decoder.state_dict().items()})
        return tensors, {"history": history, "decoder_bit_accuracy": acc, "held_out_images": int(len(test_rows)),
                         **self.residual_stats(test)}

    def load_state(self, tensors, info):
        enc, dec = self._nets()
        enc.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("encoder.")})
        dec.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("decoder.")})
        self.encoder, self.decoder = enc.eval(), dec.eval()

    @torch.no_grad()
    def residual_stats(self, images: torch.Tensor) -> dict:
        """How large the applied (rounded) perturbation is, and how much of it depends on the image.

        ``residual_mean_abs`` / ``residual_linf``: mean and largest |triggered - clean| (0-255);
        ``residual_image_dependence``: per-pixel standard deviation of the residual across images,
        averaged, divided by its mean magnitude: 0 for one fixed pattern added to every image
        (where no pixel is clipped at 0 or 255; clipping alone makes a fixed pattern vary a little)."""
        r = self.apply(images).float() - images.float()
        mean_abs = float(r.abs().mean())
        dependence = float(r.std(dim=0).mean()) / mean_abs if mean_abs > 0 and len(r) > 1 else 0.0
        return {"residual_mean_abs": mean_abs, "residual_linf": float(r.abs().max()),
                "residual_image_dependence": dependence}

    @torch.no_grad()
    def bit_accuracy(self, images: torch.Tensor) -> float:
        """Share (%) of the attack's code bits the decoder recovers from triggered images."""
        trig = self.apply(images).float()
        bits = (self.decoder(trig) > 0).float()
        return float((bits == self.code).float().mean() * 100)

    @torch.no_grad()
    def apply(self, images, generator=None):
        self._require_fitted(self.encoder)
        out = []
        for s in range(0, len(images), 256):
            x = images[s:s + 256].float()
            r = self.encoder(x, self.code.expand(len(x), -1))
            out.append((x + r).round().clamp(0, 255).to(torch.uint8))
        return torch.cat(out) if out else images.clone()

