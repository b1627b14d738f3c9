"""CFBD's mapping network F: image embedding -> synthetic text embedding T^ (Eq. 1).

What the paper says.  Sec. 2.2: "we propose to use a mapping network F to mapping the visual
embedding f_I(I_i) to the textual domain.  Similar to Li et al. (2022a) [BLIP], we apply a language
modeling (LM) loss to maximize the likelihood of the text in an autoregressive manner", and Eq. 1
T^_i = F(I^e_i) is a *text embedding*; Sec. 3.1: "We implement the mapping network with a MLP.  For
fairness, the mapping network is pre-trained on COCO ... rather than the CC-3M."  The two do not say
one architecture (an MLP does not decode text autoregressively; an LM loss needs a decoder), and the
paper names no decoder, vocabulary or decoding rule.  What the coarse stage needs of F (Sec. 2.2's
intent) is that s_g = cos(I, F(I)) be "relatively high ... regardless of poisoned pairs or benign
pairs", i.e. that T^ agree with the image at least as well as a benign caption does, so that
c = |s_g - s_o| is small for benign pairs and large for poisoned ones.

What we do.  Two kinds, ``MappingConfig.kind``:

* ``regression`` (default since issue 23): :class:`RegressionMapping`, the MLP of Sec. 3.1, trained
  on a clean captioned set disjoint from the screened pairs (the Flickr30K analogue; the paper: COCO)
  to output the CLIP text embedding of the image's caption (cosine loss), i.e. Eq. 1's output
  directly.  At the embedded scale the coarse stage then ranks poisoned pairs above benign ones
  (coarse AUROC 78-99% over nine attacks, ``results/detection/cfbd_mapping-regression.csv``).
* ``lm`` (the ablation, the default before issue 23): the LM-loss reading of Sec. 2.2, as in
  ClipCap: an MLP turns the image embedding into ``prefix_len`` prefix vectors that condition a
  small causal transformer, trained to predict the caption word by word (cross-entropy, teacher
  forcing); at detection time it generates a caption greedily and the CLIP text encoder embeds it.
  At our scale its captions agree with the images less than the real benign captions do, so c is
  largest for *benign* pairs and the coarse stage ranks poisoned pairs below benign ones (coarse
  AUROC 17-49%, ``results/detection/cfbd_mapping-lm.csv``, made before issue 23).  The decoder works on a word
  vocabulary built from its own training captions (``<bos>``, ``<eos>``, ``<unk>``, ``<pad>`` plus
  the words), which keeps the output layer small on a CPU; the generated words are joined into a
  string for the CLIP tokenizer.

``width``, ``layers``, ``heads``, ``prefix_len``, ``max_words`` and ``min_count`` shape the LM
captioner only; the regression MLP's hidden width is 4x the embedding dimension.
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from paperlib.config import param

log = logging.getLogger(__name__)
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)?|[0-9]+")


@dataclass(frozen=True)
class MappingConfig:
    kind: str = param("regression", choices=("regression", "lm"),
                      doc="regression: MLP to the caption's text embedding (default, Sec. 3.1's MLP); "
                          "lm: LM-loss caption decoder (Sec. 2.2's loss, the ablation)")
    prefix_len: int = param(4, range=(1, 64), doc="prefix vectors made from the image embedding")
    width: int = param(128, range=(16, 2048), doc="decoder width")
    layers: int = param(2, range=(1, 24), doc="decoder layers")
    heads: int = param(4, range=(1, 32), doc="attention heads")
    max_words: int = param(20, range=(2, 77), doc="longest caption generated / trained on (words)")
    epochs: float = param(4.0, range=(0.0, None), doc="passes over the captioned set")
    batch_size: int = param(128, range=(2, None), doc="captions per step")
    lr: float = param(1e-3, range=(0.0, 1.0), doc="AdamW learning rate")
    min_count: int = param(1, range=(1, None), doc="words seen fewer times become <unk>")
    seed: int = param(0, range=(0, None), doc="initialisation and batch order")


def words(caption: str) -> list[str]:
    return _WORD.findall(caption.lower())


class WordVocab:
    def __init__(self, captions: Sequence[str], min_count: int = 1):
        from collections import Counter
        counts = Counter(w for c in captions for w in words(c))
        self.itos = list(SPECIALS) + sorted(w for w, n in counts.items() if n >= min_count)
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, caption: str, max_words: int) -> list[int]:
        unk = self.stoi["<unk>"]
        return [self.stoi["<bos>"]] + [self.stoi.get(w, unk) for w in words(caption)[:max_words]] + [self.stoi["<eos>"]]

    def decode(self, ids: Sequence[int]) -> str:
        out = []
        for i in ids:
            w = self.itos[int(i)]
            if w == "<eos>":
                break
            if w not in SPECIALS:
                out.append(w)
        return " ".join(out)


class PrefixCaptioner(nn.Module):
    """Image embedding -> prefix -> causal transformer over words (ClipCap-style)."""

    def __init__(self, embed_dim: int, vocab_size: int, cfg: MappingConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.prefix = nn.Sequential(nn.Linear(embed_dim, w * cfg.prefix_len), nn.Tanh(),
                                    nn.Linear(w * cfg.prefix_len, w * cfg.prefix_len))
        self.tok = nn.Embedding(vocab_size, w)
        self.pos = nn.Parameter(torch.zeros(cfg.prefix_len + cfg.max_words + 2, w))
        layer = nn.TransformerEncoderLayer(w, cfg.heads, 4 * w, dropout=0.0, batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.head = nn.Linear(w, vocab_size)
        nn.init.normal_(self.pos, std=0.01)

    def forward(self, image_emb: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Logits for every word position of ``ids`` (B, L) given the image embeddings."""
        B, L = ids.shape
        P = self.cfg.prefix_len
        x = torch.cat([self.prefix(image_emb).view(B, P, -1), self.tok(ids)], 1) + self.pos[:P + L]
        mask = torch.triu(torch.full((P + L, P + L), float("-inf"), device=ids.device), 1)
        h = self.body(x, mask=mask)
        return self.head(h[:, P:])

    @torch.no_grad()
    def generate(self, image_emb: torch.Tensor, bos: int, eos: int) -> torch.Tensor:
        """Greedy decoding; (B, <= max_words + 1) word ids after <bos>."""
        ids = torch.full((len(image_emb), 1), bos, dtype=torch.long, device=image_emb.device)
        done = torch.zeros(len(image_emb), dtype=torch.bool, device=image_emb.device)
        for _ in range(self.cfg.max_words + 1):
            nxt = self(image_emb, ids)[:, -1].argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, eos), nxt)
            ids = torch.cat([ids, nxt[:, None]], 1)
            done |= nxt == eos
            if done.all():
                break
        return ids[:, 1:]


class RegressionMapping(nn.Module):
    """The default F: an MLP from image embedding to the caption's (normalised) text embedding."""

    def __init__(self, embed_dim: int, width: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(embed_dim, width), nn.GELU(), nn.Linear(width, embed_dim))

    def forward(self, image_emb):
        return F.normalize(self.net(image_emb), dim=-1)


class MappingNetwork:
    """F of Eq. 1, trained on (image embedding, caption) pairs; ``synthetic(image_emb)`` -> T^."""

    def __init__(self, cfg: MappingConfig):
        self.cfg = cfg
        self.vocab: WordVocab | None = None
        self.net: nn.Module | None = None
        self.history: list[dict] = []

    def fit(self, image_emb: torch.Tensor, captions: Sequence[str], text_emb: torch.Tensor | None = None,
            device="cpu") -> "MappingNetwork":
        from paperlib.progress import bar as progress_bar
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        g = torch.Generator().manual_seed(cfg.seed)
        image_emb = F.normalize(image_emb.float(), dim=-1)
        n = len(captions)
        steps = max(1, int(math.ceil(cfg.epochs * n / cfg.batch_size)))
        if cfg.kind == "regression":
            if text_emb is None:
                raise ValueError("regression mapping needs the captions' text embeddings")
            self.net = RegressionMapping(image_emb.shape[1], 4 * image_emb.shape[1]).to(device)
        else:
            self.vocab = WordVocab(captions, cfg.min_count)
            self.net = PrefixCaptioner(image_emb.shape[1], len(self.vocab), cfg).to(device)
            seqs = [self.vocab.encode(c, cfg.max_words) for c in captions]
            L = max(len(s) for s in seqs)
            ids = torch.zeros((n, L), dtype=torch.long)
            for i, s in enumerate(seqs):
                ids[i, :len(s)] = torch.tensor(s)
        opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
        self.net.train()
        for step in progress_bar(range(steps), desc=f"CFBD mapping ({cfg.kind})", unit="step", mininterval=5):
            idx = torch.randint(0, n, (min(cfg.batch_size, n),), generator=g)
            x = image_emb[idx].to(device)
            if cfg.kind == "regression":
                loss = 1 - (self.net(x) * F.normalize(text_emb[idx].float().to(device), dim=-1)).sum(1).mean()
            else:
                b = ids[idx].to(device)
                logits = self.net(x, b[:, :-1])
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), b[:, 1:].reshape(-1), ignore_index=0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step % 50 == 0 or step == steps - 1:
                self.history.append({"step": step, "loss": float(loss.detach())})
        self.net.eval()
        return self

    @torch.no_grad()
    def captions(self, image_emb: torch.Tensor, device="cpu", batch_size: int = 512) -> list[str]:
        """Generated captions (language-model mapping only)."""
        if self.cfg.kind != "lm":
            raise ValueError("only the language-model mapping generates captions")
        out = []
        image_emb = F.normalize(image_emb.float(), dim=-1)
        for s in range(0, len(image_emb), batch_size):
            ids = self.net.generate(image_emb[s:s + batch_size].to(device), self.vocab.stoi["<bos>"],
                                    self.vocab.stoi["<eos>"])
            out += [self.vocab.decode(r.tolist()) for r in ids.cpu()]
        return out

    @torch.no_grad()
    def synthetic(self, image_emb: torch.Tensor, clip_model, tokenizer, device="cpu",
                  batch_size: int = 512) -> tuple[torch.Tensor, list[str]]:
        """T^ = F(I^e): normalised synthetic text embeddings (and the generated captions)."""
        if self.cfg.kind == "regression":
            return self.net(F.normalize(image_emb.float(), dim=-1).to(device)).cpu(), []
        caps = self.captions(image_emb, device, batch_size)
        embs = []
        for s in range(0, len(caps), batch_size):
            t = tokenizer(caps[s:s + batch_size]).to(device)
            embs.append(F.normalize(clip_model.encode_text(t).float(), dim=-1).cpu())
        return torch.cat(embs), caps

