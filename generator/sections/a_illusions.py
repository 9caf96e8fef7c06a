"""Part A, 1.8–1.9: optical illusions from the sampler: visual anagrams and hybrid images."""

from __future__ import annotations

import torch
from torchvision.transforms.functional import resize

from ..diffusion.samplers import anagram, hybrid
from ..diffusion.views import get_view
from ..figures import image_table
from ..section import Figure, Result
from .common import cell, from_noise, generator, score, short, table, upsampled_table
from .params import AnagramParams, HybridParams


def visual_anagrams(p: AnagramParams, ctx) -> Result:
    backend = ctx.backend()
    den = backend.denoiser
    views = ["identity", *p.views]
    uncond = den.encode([""])
    gen = generator(p.seed)
    images, shown, prompts_of = [], [], [[] for _ in views]
    for prompts in p.anagrams:
        eps_fn = anagram(den, [den.encode([q]) for q in prompts], views, uncond, p.guidance)
        x = from_noise(backend, eps_fn, p.num_samples, gen).cpu()  # (n, C, H, W)
        images.append(x)
        for k, q in enumerate(prompts):
            prompts_of[k] += [q] * p.num_samples
        shown.append(torch.stack([get_view(v).apply(x[:1]) for v in views], dim=1)[0])  # (len(views), C, H, W)
    x = torch.cat(images)
    table(backend, torch.stack(shown), ctx.out / "anagrams.png", row_labels=[" / ".join(short(q, 14)) for q in p.anagrams],
          col_labels=["as it is", *p.views])
    samples = {"images": backend.to_pixels(x), **{f"prompts_view{k + 1}": prompts_of[k] for k in range(len(views))}}
    samples["view"] = p.views[0] if len(p.views) == 1 else ",".join(p.views)
    metrics, rows = {}, []
    labels = [backend.labels_of(q) for q in prompts_of]
    read = [score(backend, backend.to_pixels(get_view(v).apply(x)), lab) for v, lab in zip(views, labels)]
    if all(r is not None for r in read):
        for k, correct in enumerate(read):
            metrics[f"accuracy_view{k + 1}"] = float(correct.mean())
            samples[f"labels_view{k + 1}"] = labels[k]
            rows.append({"view": views[k], "accuracy": metrics[f"accuracy_view{k + 1}"]})
        metrics["accuracy_all_views"] = float(torch.stack(read).prod(0).mean())
    figures = [Figure("anagrams.png", f"Each anagram as it is and under {', '.join(p.views)}; γ = {p.guidance:g}", pixelated=backend.spec.pixelated)]
    first = torch.cat([im[:1] for im in images])
    if upsampled_table(backend, first, [q[0] for q in p.anagrams], gen, ctx.out / "upsampled.png", len(p.anagrams)):
        figures.append(Figure("upsampled.png", "The first sample of each anagram upsampled to 256×256 by stage II"))
    return Result(metrics=metrics, figures=figures, samples=samples, data={"views": p.views, "rows": rows})


def hybrid_images(p: HybridParams, ctx) -> Result:
    backend = ctx.backend()
    den = backend.denoiser
    uncond = den.encode([""])
    gen = generator(p.seed)
    images = []
    for low, high in p.pairs:
        eps_fn = hybrid(den, den.encode([low]), den.encode([high]), uncond, p.guidance, p.kernel_size, p.sigma)
        images.append(from_noise(backend, eps_fn, p.num_samples, gen).cpu())
    x = torch.cat(images)
    pixels = backend.to_pixels(x)
    # What a viewer far away sees: the image at a quarter of its size (shown blown up again).
    H, W = backend.shape[-2:]
    far = resize(resize(pixels, [H // 4, W // 4], antialias=True), [H, W], antialias=False)
    first = torch.stack([pixels[:: p.num_samples], far[:: p.num_samples]], dim=1)  # (pairs, 2, C, H, W)
    image_table(first, ctx.out / "hybrids.png", row_labels=[f"{short([lo], 14)[0]} / {short([hi], 14)[0]}" for lo, hi in p.pairs],
                col_labels=["close up", "from afar"], cell=cell(backend))
    caption = f"Hybrids: low frequencies of the first prompt, high of the second (kernel {p.kernel_size}, σ = {p.sigma:g})"
    figures = [Figure("hybrids.png", caption, pixelated=backend.spec.pixelated)]
    if upsampled_table(backend, x[:: p.num_samples], [hi for _, hi in p.pairs], gen, ctx.out / "upsampled.png", len(p.pairs)):
        figures.append(Figure("upsampled.png", "Upsampled to 256×256 by stage II"))
    samples = {
        "images": pixels,
        "prompts_low": [lo for lo, _ in p.pairs for _ in range(p.num_samples)],
        "prompts_high": [hi for _, hi in p.pairs for _ in range(p.num_samples)],
    }
    low, high = backend.labels_of(samples["prompts_low"]), backend.labels_of(samples["prompts_high"])
    far_right, close_right = score(backend, far, low), score(backend, pixels, high)
    metrics = {}
    if far_right is not None and close_right is not None:
        metrics["far_read_as_low"] = float(far_right.mean())
        metrics["close_read_as_high"] = float(close_right.mean())
        samples |= {"labels_low": low, "labels_high": high}
    return Result(metrics=metrics, figures=figures, samples=samples)
