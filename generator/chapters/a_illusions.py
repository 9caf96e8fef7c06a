"""Part A, 1.8–1.9: optical illusions from the sampler: visual anagrams and hybrid images."""

from __future__ import annotations

import torch
from torchvision.transforms.functional import resize

from ..diffusion.samplers import anagram, hybrid
from ..diffusion.views import get_view
from ..figures import actual_size, image_table, rate_plot
from ..section import Figure, Result
from .common import cell, from_noise, generator, score, short, table, upsampled_table
from .params import AnagramParams, HybridParams


def visual_anagrams(p: AnagramParams, ctx) -> Result:
    backend = ctx.backend()
    den = backend.denoiser
    views = ["identity", *p.views]
    uncond = den.encode([""])
    gen = generator(p.seed)
    images, prompts_of = [], [[] for _ in views]
    for prompts in p.anagrams:
        eps_fn = anagram(den, [den.encode([q]) for q in prompts], views, uncond, p.guidance)
        images.append(from_noise(backend, eps_fn, p.num_samples, gen).cpu())  # (n, C, H, W)
        for k, q in enumerate(prompts):
            prompts_of[k] += [q] * p.num_samples
    x = torch.cat(images)
    # Every sample, as it is and under each view: one row per anagram and view.
    shown = torch.stack(
        [get_view(v).apply(im) for im in images for v in views]
    )  # (anagrams·views, n, C, H, W)
    row_labels = [
        f"{short([q], 14)[0]}: {'as it is' if v == 'identity' else v}"
        for qs in p.anagrams
        for q, v in zip(qs, views)
    ]
    table(backend, shown, ctx.out / "anagrams.png", row_labels=row_labels)
    samples = {
        "images": backend.to_pixels(x),
        **{f"prompts_view{k + 1}": prompts_of[k] for k in range(len(views))},
    }
    samples["view"] = p.views[0] if len(p.views) == 1 else ",".join(p.views)
    metrics, rows = {}, []
    labels = [backend.labels_of(q) for q in prompts_of]
    read = [
        score(backend, backend.to_pixels(get_view(v).apply(x)), lab)
        for v, lab in zip(views, labels)
    ]
    if all(r is not None for r in read):
        both = torch.stack(read).prod(0)  # (N,) 1 where every view reads as its prompt
        for k, correct in enumerate(read):
            metrics[f"accuracy_view{k + 1}"] = float(correct.mean())
            samples[f"labels_view{k + 1}"] = labels[k]
        metrics["accuracy_all_views"] = float(both.mean())
        for a, prompts in enumerate(p.anagrams):
            part = slice(a * p.num_samples, (a + 1) * p.num_samples)
            metrics[f"accuracy_all_views_anagram_{a + 1}"] = float(both[part].mean())
            rows.append(
                {
                    "prompts": prompts,
                    "views": [float(r[part].mean()) for r in read],
                    "all": float(both[part].mean()),
                }
            )
    caption = f"Every sample of each anagram ({p.num_samples} per row), as it is and under {', '.join(p.views)}; \\(\\gamma = {p.guidance:g}\\)"
    figures = [Figure("anagrams.png", caption, pixelated=backend.spec.pixelated)]
    first = torch.cat([im[:1] for im in images])
    if upsampled_table(
        backend, first, [q[0] for q in p.anagrams], gen, ctx.out / "upsampled.png", len(p.anagrams)
    ):
        figures.append(
            Figure(
                "upsampled.png", "The first sample of each anagram upsampled to 256×256 by stage II"
            )
        )
    return Result(
        metrics=metrics, figures=figures, samples=samples, data={"views": p.views, "rows": rows}
    )


def _hybrids(backend, p: HybridParams, sigma: float) -> torch.Tensor:
    """`num_samples` hybrids of each pair at one σ of the low-pass filter, all from the same seed."""
    den = backend.denoiser
    uncond = den.encode([""])
    gen = generator(p.seed)
    images = []
    for low, high in p.pairs:
        eps_fn = hybrid(
            den, den.encode([low]), den.encode([high]), uncond, p.guidance, p.kernel_size, sigma
        )
        images.append(from_noise(backend, eps_fn, p.num_samples, gen).cpu())
    return torch.cat(images)


def hybrid_images(p: HybridParams, ctx) -> Result:
    backend = ctx.backend()
    H, W = backend.shape[-2:]
    low_prompts = [lo for lo, _ in p.pairs for _ in range(p.num_samples)]
    high_prompts = [hi for _, hi in p.pairs for _ in range(p.num_samples)]
    low, high = backend.labels_of(low_prompts), backend.labels_of(high_prompts)
    runs, rows = {}, []
    for sigma in p.sigmas:
        pixels = backend.to_pixels(_hybrids(backend, p, sigma))
        far = resize(
            pixels, [H // p.far_scale, W // p.far_scale], antialias=True
        )  # what a viewer far away sees
        runs[sigma] = pixels, far
        # the classifier reads the far view enlarged back to its input size
        far_right, close_right = (
            score(backend, resize(far, [H, W], antialias=False), low),
            score(backend, pixels, high),
        )
        if far_right is not None and close_right is not None:
            rows.append(
                {
                    "sigma": sigma,
                    "far": float(far_right.mean()),
                    "close": float(close_right.mean()),
                    "both": float((far_right * close_right).mean()),
                }
            )
    best = (
        max(rows, key=lambda r: (r["both"], r["far"] + r["close"]))["sigma"]
        if rows
        else p.sigmas[0]
    )
    pixels, far = runs[best]
    shown = torch.stack(
        [pixels[:: p.num_samples], resize(far[:: p.num_samples], [H, W], interpolation=0)], dim=1
    )
    image_table(
        shown,
        ctx.out / "hybrids.png",
        row_labels=[f"{short([lo], 14)[0]} / {short([hi], 14)[0]}" for lo, hi in p.pairs],
        col_labels=["close up", f"from afar ({H // p.far_scale}×{W // p.far_scale})"],
        cell=cell(backend),
    )
    actual_size(
        [[pixels[i], far[i]] for i in range(0, len(pixels), p.num_samples)],
        ctx.out / "hybrids_actual_size.png",
    )
    figures = [
        Figure(
            "hybrids.png",
            f"Hybrids at \\(\\sigma = {best:g}\\) (kernel {p.kernel_size}): low frequencies of the first prompt, "
            "high of the second; the far view enlarged",
            pixelated=backend.spec.pixelated,
        ),
        Figure(
            "hybrids_actual_size.png",
            f"The same at actual size: {H}×{W} pixels, and {H // p.far_scale}×{W // p.far_scale} as seen from afar",
        ),
    ]
    metrics = {}
    if rows:
        for r in rows:
            for kind in ("far", "close", "both"):
                metrics[f"{kind}_sigma_{r['sigma']:g}"] = r[kind]
        top = next(r for r in rows if r["sigma"] == best)
        metrics |= {
            "far_read_as_low": top["far"],
            "close_read_as_high": top["close"],
            "both_ways": top["both"],
            "best_sigma": best,
        }
        if len(rows) > 1:
            rate_plot(
                [r["sigma"] for r in rows],
                {
                    "far view read as the first digit": [r["far"] for r in rows],
                    "close view read as the second": [r["close"] for r in rows],
                    "both": [r["both"] for r in rows],
                },
                ctx.out / "sweep.png",
                xlabel="σ of the low-pass filter (pixels)",
                title="How hybrids read, by σ",
            )
            figures.append(
                Figure(
                    "sweep.png",
                    f"Share of {len(low_prompts)} hybrids read right from afar, close up, and both, for each \\(\\sigma\\)",
                )
            )
    if upsampled_table(
        backend,
        backend.to_model(pixels[:: p.num_samples]),
        [hi for _, hi in p.pairs],
        generator(p.seed),
        ctx.out / "upsampled.png",
        len(p.pairs),
    ):
        figures.append(Figure("upsampled.png", "Upsampled to 256×256 by stage II"))
    samples = {
        "images": pixels,
        "far": far,
        "prompts_low": low_prompts,
        "prompts_high": high_prompts,
        "sigma": [best] * len(pixels),
    }
    if low is not None and high is not None:
        samples |= {"labels_low": low, "labels_high": high}
    return Result(
        metrics=metrics, figures=figures, samples=samples, data={"rows": rows, "best_sigma": best}
    )
