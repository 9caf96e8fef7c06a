"""Part A, 1.8–1.9: optical illusions from the sampler: visual anagrams and hybrid images."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..errors import UsageError
from ..section import Figure, Headline, Params, Result, lazy, percent, section
from .common import cell, from_noise, labels_of, rng, score, short, table, upsampled
from .params import Guidance, KernelSize, Prompt, Samples, check_odd, check_prompts

# Imported where a run first uses them: reading the table (gen list) imports no torch.
torch = lazy("torch")
TF = lazy("torchvision.transforms.functional")
samplers = lazy("..diffusion.samplers", __package__)
diffusion_views = lazy("..diffusion.views", __package__)
figs = lazy("..figures", __package__)

ViewName = Literal["flip", "rot180", "rot90cw", "rot90ccw", "negate", "transpose"]


class AnagramParams(Params):
    anagrams: list[Annotated[list[Prompt], Field(min_length=2, max_length=4)]] = Field(
        min_length=1,
        max_length=8,
        description="prompt lists: the first as the image is, the others under `views`",
    )
    views: list[ViewName] = Field(
        min_length=1, max_length=3, description="the view of each further prompt"
    )
    num_samples: Samples
    guidance: Guidance

    def check(self, config, sid):
        for prompts in self.anagrams:
            if len(prompts) != len(self.views) + 1:
                raise UsageError(
                    f"bad value {sid}.anagrams: {prompts} has {len(prompts)} prompts but "
                    f"{sid}.views={self.views} "
                    f"needs {len(self.views) + 1} (one as the image is, one per view)"
                )
            check_prompts(config, f"{sid}.anagrams", prompts)
        low, high = config.spec.value_range
        if "negate" in self.views and low >= 0:
            raise UsageError(
                f"bad value {sid}.views: 'negate' needs a model whose pixels are centred on zero; "
                f"the {config.backend} "
                f"model works on [{low:g}, {high:g}]. Use flip, rot180, rot90cw, rot90ccw or "
                "transpose"
            )

    def all_prompts(self):
        return [p for prompts in self.anagrams for p in prompts]


class HybridParams(Params):
    pairs: list[Annotated[list[Prompt], Field(min_length=2, max_length=2)]] = Field(
        min_length=1,
        max_length=8,
        description="[low-frequency prompt, high-frequency prompt] pairs",
    )
    kernel_size: KernelSize
    sigmas: list[Annotated[float, Field(gt=0.0, le=50.0)]] = Field(
        min_length=1,
        max_length=12,
        description="σ of the low-pass Gaussian in pixels; several: a sweep, shown at the best",
    )
    far_scale: int = Field(
        ge=2, le=16, description="how many times smaller the image is seen from afar"
    )
    num_samples: Samples
    guidance: Guidance

    def check(self, config, sid):
        check_odd(f"{sid}.kernel_size", self.kernel_size)
        for pair in self.pairs:
            check_prompts(config, f"{sid}.pairs", pair)

    def all_prompts(self):
        return [p for pair in self.pairs for p in pair]


def _visual_anagrams_headline(r) -> Headline | None:
    if "accuracy_all_views" not in r.metrics:
        return None
    return Headline("read right in every view", percent(r.metrics["accuracy_all_views"]))


@section(
    "a1.8",
    "Visual anagrams",
    AnagramParams,
    version=3,
    uses_backend=True,
    headline=_visual_anagrams_headline,
)
def visual_anagrams(p: AnagramParams, ctx) -> Result:
    backend = ctx.backend()
    den = backend.denoiser
    views = ["identity", *p.views]
    uncond = den.encode([""])
    gen = rng(p.seed)
    images, prompts_of = [], [[] for _ in views]
    for prompts in p.anagrams:
        eps_fn = samplers.anagram(
            den, [den.encode([q]) for q in prompts], views, uncond, p.guidance
        )
        images.append(from_noise(backend, eps_fn, p.num_samples, gen).cpu())  # (n, C, H, W)
        for k, q in enumerate(prompts):
            prompts_of[k] += [q] * p.num_samples
    x = torch.cat(images)
    # Every sample, as it is and under each view: one row per anagram and view.
    shown = torch.stack(
        [diffusion_views.get_view(v).apply(im) for im in images for v in views]
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
    labels = [labels_of(backend, q) for q in prompts_of]
    read = [
        score(backend, backend.to_pixels(diffusion_views.get_view(v).apply(x)), lab)
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
    caption = (
        f"Every sample of each anagram ({p.num_samples} per row), as it is and under "
        f"{', '.join(p.views)}; \\(\\gamma = {p.guidance:g}\\)"
    )
    figures = [Figure("anagrams.png", caption, pixelated=backend.spec.pixelated)]
    first = torch.cat([im[:1] for im in images])
    figures += upsampled(
        backend,
        first,
        [q[0] for q in p.anagrams],
        gen,
        ctx.out,
        len(p.anagrams),
        "The first sample of each anagram",
    )
    return Result(
        metrics=metrics, figures=figures, samples=samples, data={"views": p.views, "rows": rows}
    )


def _hybrids(backend, p: HybridParams, sigma: float) -> torch.Tensor:
    """`num_samples` hybrids of each pair at one σ of the low-pass filter, all from the same
    seed."""
    den = backend.denoiser
    uncond = den.encode([""])
    gen = rng(p.seed)
    images = []
    for low, high in p.pairs:
        eps_fn = samplers.hybrid(
            den, den.encode([low]), den.encode([high]), uncond, p.guidance, p.kernel_size, sigma
        )
        images.append(from_noise(backend, eps_fn, p.num_samples, gen).cpu())
    return torch.cat(images)


def _hybrid_images_headline(r) -> Headline | None:
    if "best_sigma" not in r.metrics:
        return None
    both = r.metrics[f"both_sigma_{r.metrics['best_sigma']:g}"]
    return Headline("read right close up and from afar", percent(both))


@section(
    "a1.9",
    "Hybrid images",
    HybridParams,
    version=4,
    uses_backend=True,
    headline=_hybrid_images_headline,
)
def hybrid_images(p: HybridParams, ctx) -> Result:
    backend = ctx.backend()
    H, W = backend.shape[-2:]
    low_prompts = [lo for lo, _ in p.pairs for _ in range(p.num_samples)]
    high_prompts = [hi for _, hi in p.pairs for _ in range(p.num_samples)]
    low, high = labels_of(backend, low_prompts), labels_of(backend, high_prompts)
    runs, rows = {}, []
    for sigma in p.sigmas:
        pixels = backend.to_pixels(_hybrids(backend, p, sigma))
        far = TF.resize(
            pixels, [H // p.far_scale, W // p.far_scale], antialias=True
        )  # what a viewer far away sees
        runs[sigma] = pixels, far
        # the classifier reads the far view enlarged back to its input size
        far_right, close_right = (
            score(backend, TF.resize(far, [H, W], antialias=False), low),
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
        [pixels[:: p.num_samples], TF.resize(far[:: p.num_samples], [H, W], interpolation=0)], dim=1
    )
    figs.image_table(
        shown,
        ctx.out / "hybrids.png",
        row_labels=[f"{short([lo], 14)[0]} / {short([hi], 14)[0]}" for lo, hi in p.pairs],
        col_labels=["close up", f"from afar ({H // p.far_scale}×{W // p.far_scale})"],
        cell=cell(backend),
    )
    figs.actual_size(
        [[pixels[i], far[i]] for i in range(0, len(pixels), p.num_samples)],
        ctx.out / "hybrids_actual_size.png",
    )
    figures = [
        Figure(
            "hybrids.png",
            f"Hybrids at \\(\\sigma = {best:g}\\) (kernel {p.kernel_size}): low frequencies of the "
            "first prompt, "
            "high of the second; the far view enlarged",
            pixelated=backend.spec.pixelated,
        ),
        Figure(
            "hybrids_actual_size.png",
            f"The same at actual size: {H}×{W} pixels, and {H // p.far_scale}×{W // p.far_scale} "
            "as seen from afar",
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
            figs.rate_plot(
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
                    f"Share of {len(low_prompts)} hybrids read right from afar, close up, and "
                    "both, for each \\(\\sigma\\)",
                )
            )
    figures += upsampled(
        backend,
        backend.to_model(pixels[:: p.num_samples]),
        [hi for _, hi in p.pairs],
        rng(p.seed),
        ctx.out,
        len(p.pairs),
    )
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
