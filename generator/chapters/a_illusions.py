"""Part A, 1.8–1.9: optical illusions from the sampler: visual anagrams and hybrid images."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..errors import UsageError
from ..section import Figure, Headline, Params, Result, lazy, percent, section
from .common import (
    cell,
    from_noise,
    labels_of,
    real_digits,
    rng,
    score,
    short,
    sure,
    upsampled,
)
from .params import Guidance, KernelSize, Prompt, Samples, check_odd, check_prompts

# Imported where a run first uses them: reading the table (gen list) imports no torch.
torch = lazy("torch")
TF = lazy("torchvision.transforms.functional")
samplers = lazy("..diffusion.samplers", __package__)
diffusion_views = lazy("..diffusion.views", __package__)
figs = lazy("..figures", __package__)

ViewName = Literal["flip", "rot180", "rot90cw", "rot90ccw", "negate", "transpose"]


# Digits a view leaves as they are (as MNIST writes them), and pairs of digits it turns into each
# other: an anagram of them shows nothing of the method, so `anagrams: all` leaves them out.
UNCHANGED = {"flip": "0138", "rot180": "018"}
SWAPPED = {"flip": {"25"}, "rot180": {"69"}}


def all_anagrams(classes: tuple[str, ...], view: str) -> list[list[str]]:
    """Every ordered pair of distinct classes, but those the view makes trivial."""
    kept = [c for c in classes if c not in UNCHANGED.get(view, "")]
    return [
        [a, b]
        for a in kept
        for b in kept
        if a != b and "".join(sorted(a + b)) not in SWAPPED.get(view, set())
    ]


class AnagramParams(Params):
    anagrams: list[Annotated[list[Prompt], Field(min_length=2, max_length=4)]] | Literal["all"] = (
        Field(
            description="prompt lists: the first as the image is, the others under `views`; all: "
            "every pair of the backend's classes (digits) that the view does not make trivial",
        )
    )
    views: list[ViewName] = Field(
        min_length=1, max_length=3, description="the view of each further prompt"
    )
    num_samples: Samples
    shown: int = Field(
        ge=0,
        le=8,
        description="anagrams the figure shows, those read confidently in every view most often "
        "first; 0: every one",
    )
    guidance: Guidance

    def tried(self, spec) -> list[list[str]]:
        """The anagrams sampled, in order."""
        if self.anagrams == "all":
            return all_anagrams(spec.classes, self.views[0])
        return self.anagrams

    def check(self, config, sid):
        if self.anagrams == "all":
            if not config.spec.classes:
                raise UsageError(
                    f"bad value {sid}.anagrams: 'all' takes every pair of classes a classifier "
                    f"reads, and the {config.backend} backend has none; list the prompts"
                )
            if len(self.views) != 1:
                raise UsageError(
                    f"bad value {sid}.anagrams: 'all' makes pairs, for one view; {sid}.views has "
                    f"{len(self.views)}"
                )
        for prompts in self.tried(config.spec):
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
        if self.anagrams == "all":  # pairs of classes, which need no encoding ahead
            return []
        return [p for prompts in self.anagrams for p in prompts]


class HybridParams(Params):
    pairs: list[Annotated[list[Prompt], Field(min_length=2, max_length=2)]] | Literal["all"] = (
        Field(
            description="[low-frequency prompt, high-frequency prompt] pairs, 1 to 8; all: every "
            "ordered pair of two of the backend's classes (digits)",
        )
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
    shown: int = Field(
        ge=0,
        le=8,
        description="pairs the figure shows, those read confidently at both distances most often "
        "first; 0: every one",
    )
    guidance: Guidance

    def tried(self, spec) -> list[list[str]]:
        """The pairs sampled, in order."""
        if self.pairs == "all":
            return [[a, b] for a in spec.classes for b in spec.classes if a != b]
        return self.pairs

    def check(self, config, sid):
        check_odd(f"{sid}.kernel_size", self.kernel_size)
        if self.pairs == "all" and not config.spec.classes:
            raise UsageError(
                f"bad value {sid}.pairs: 'all' takes every pair of classes a classifier reads, "
                f"and the {config.backend} backend has none; list the prompts"
            )
        if self.pairs != "all" and not 1 <= len(self.pairs) <= 8:
            raise UsageError(f"bad value {sid}.pairs: give 1 to 8 pairs, or all")
        for pair in self.tried(config.spec):
            check_prompts(config, f"{sid}.pairs", pair)

    def all_prompts(self):
        if self.pairs == "all":  # pairs of classes, which need no encoding ahead
            return []
        return [p for pair in self.pairs for p in pair]


def _visual_anagrams_headline(r) -> Headline | None:
    if "confident_all_views" not in r.metrics:
        return None
    shown, tried = len(r.data["shown"]), len(r.data["rows"])
    chosen = f", the best {shown} of {tried}" if shown < tried else ""
    return Headline(
        f"of the anagrams shown read confidently in every view{chosen} "
        f"(real digits, one view: {percent(r.metrics['real_confident_right'])})",
        percent(r.metrics["confident_all_views"]),
    )


@section(
    "a1.8",
    "Visual anagrams",
    AnagramParams,
    version=5,
    uses_backend=True,
    headline=_visual_anagrams_headline,
)
def visual_anagrams(p: AnagramParams, ctx) -> Result:
    backend = ctx.backend()
    den = backend.denoiser
    views = ["identity", *p.views]
    tried = p.tried(backend.spec)
    n = p.num_samples
    # every candidate of every anagram in one batch: prompts[k] is what view k should show
    prompts = [[a[k] for a in tried for _ in range(n)] for k in range(len(views))]
    eps_fn = samplers.anagram(
        den, [den.encode(q) for q in prompts], views, den.encode([""]), p.guidance
    )
    gen = rng(p.seed)
    x = from_noise(backend, eps_fn, len(tried) * n, gen).cpu()  # (anagrams·n, C, H, W)
    seen = [backend.to_pixels(diffusion_views.get_view(v).apply(x)) for v in views]
    labels = [labels_of(backend, q) for q in prompts]
    plain = [score(backend, px, lab) for px, lab in zip(seen, labels)]
    confident = [sure(backend, px, lab) for px, lab in zip(seen, labels)]
    scored = all(r is not None for r in plain)
    # (anagrams, n): 1 where every view reads as its prompt (confidently); 0 without a classifier
    every = torch.stack(confident).prod(0) if scored else torch.zeros(len(x))
    every = every.reshape(len(tried), n)
    rows = []
    for a, anagram in enumerate(tried):
        part = slice(a * n, (a + 1) * n)
        rows.append({"prompts": anagram, "index": a})
        if scored:
            rows[-1] |= {
                "views": [float(r[part].mean()) for r in plain],
                "views_confident": [float(r[part].mean()) for r in confident],
                "all": float(torch.stack(plain)[:, part].prod(0).mean()),
                "all_confident": float(every[a].mean()),
            }
    # The rule that picks what the figure shows: read confidently in every view most often, then
    # plainly, then the order tried (without a classifier: the order tried).
    ranked = sorted(rows, key=lambda r: (-r.get("all_confident", 0), -r.get("all", 0), r["index"]))
    shown = sorted(r["index"] for r in ranked[: p.shown or len(rows)])
    view_images = torch.stack(seen, 1).reshape(len(tried), n, len(views), *x.shape[1:])
    figs.image_table(
        view_images[shown].transpose(1, 2).flatten(0, 1),  # (shown·views, n, C, H, W)
        ctx.out / "anagrams.webp",
        row_labels=[
            f"{short([q], 14)[0]}: {'as it is' if v == 'identity' else v}"
            for a in shown
            for q, v in zip(tried[a], views)
        ],
        cell=cell(backend),
        marked=every[shown].repeat_interleave(len(views), 0).bool() if scored else None,
    )
    mark = " Green frames: the classifier read every view confidently." if scored else ""
    chosen = (
        f"the {len(shown)} of {len(tried)} anagrams read confidently in every view most often"
        if len(shown) < len(tried)
        else f"every anagram ({len(tried)})"
    )
    figures = [
        Figure(
            "anagrams.webp",
            f"Every candidate ({n} per anagram) of {chosen}, as it is and under "
            f"{', '.join(p.views)}; \\(\\gamma = {p.guidance:g}\\).{mark}",
            pixelated=backend.spec.pixelated,
        )
    ]
    if len(shown) < len(tried):
        figs.image_table(
            view_images[:, :, 0],
            ctx.out / "anagrams_tried.webp",
            row_labels=[" / ".join(a) for a in tried],
            cell=0.35,
            marked=every.bool() if scored else None,
        )
        figures.append(
            Figure(
                "anagrams_tried.webp",
                f"Every anagram tried, as it is: {n} candidates each.{mark}",
                pixelated=backend.spec.pixelated,
            )
        )
    first = x.reshape(len(tried), n, *x.shape[1:])[shown, 0]
    figures += upsampled(
        backend,
        backend.to_model(first),
        [tried[a][0] for a in shown],
        gen,
        ctx.out,
        len(shown),
        "The first sample of each anagram",
    )
    samples = {
        "images": seen[0],
        **{f"prompts_view{k + 1}": prompts[k] for k in range(len(views))},
        "view": p.views[0] if len(p.views) == 1 else ",".join(p.views),
        "seed": [p.seed] * len(x),  # the batch's; candidate k of anagram a is image a·n + k
        "candidate": [k for _ in tried for k in range(n)],
        "shown": [a in shown for a in range(len(tried)) for _ in range(n)],
    }
    metrics = {}
    if scored:
        for k in range(len(views)):
            samples[f"labels_view{k + 1}"] = labels[k]
        samples["confident_all_views"] = every.flatten().bool()
        on_show = [rows[a] for a in shown]
        metrics = {
            "confident_all_views": sum(r["all_confident"] for r in on_show) / len(on_show),
            "accuracy_all_views": sum(r["all"] for r in on_show) / len(on_show),
            "confident_all_views_tried": float(every.mean()),
            "accuracy_all_views_tried": sum(r["all"] for r in rows) / len(rows),
            "real_confident_right": real_digits(backend)["test_confident_right"],
        }
    return Result(
        metrics=metrics,
        figures=figures,
        samples=samples,
        data={
            "views": p.views,
            "rows": rows,
            "ranked": [r["index"] for r in ranked],
            "shown": shown,
            "candidates": n,
        },
    )


def _hybrids(backend, p: HybridParams, low: list[str], high: list[str], sigma: float):
    """A hybrid of each (low[i], high[i]) at one σ of the low-pass filter: every candidate of
    every pair in one batch, from the seed."""
    den = backend.denoiser
    eps_fn = samplers.hybrid(
        den, den.encode(low), den.encode(high), den.encode([""]), p.guidance, p.kernel_size, sigma
    )
    return from_noise(backend, eps_fn, len(low), rng(p.seed)).cpu()


def _hybrid_images_headline(r) -> Headline | None:
    if "both_ways_confident" not in r.metrics:
        return None
    shown, tried = len(r.data.get("shown", [])), len(r.data["pairs"])
    chosen = f", the best {shown} of {tried} pairs" if 0 < shown < tried else ""
    return Headline(
        f"read confidently right close up and from afar, at the best σ{chosen} (real digits "
        f"from afar: {percent(r.metrics['real_confident_right_far'])})",
        percent(r.metrics["both_ways_confident"]),
    )


@section(
    "a1.9",
    "Hybrid images",
    HybridParams,
    version=7,
    uses_backend=True,
    headline=_hybrid_images_headline,
)
def hybrid_images(p: HybridParams, ctx) -> Result:
    backend = ctx.backend()
    H, W = backend.shape[-2:]
    tried = p.tried(backend.spec)
    n = p.num_samples
    low_prompts = [lo for lo, _ in tried for _ in range(n)]
    high_prompts = [hi for _, hi in tried for _ in range(n)]
    low, high = labels_of(backend, low_prompts), labels_of(backend, high_prompts)
    runs, rows = {}, []
    for sigma in p.sigmas:
        pixels = backend.to_pixels(_hybrids(backend, p, low_prompts, high_prompts, sigma))
        far = TF.resize(
            pixels, [H // p.far_scale, W // p.far_scale], antialias=True
        )  # what a viewer far away sees
        # the classifier reads the far view enlarged back to its input size
        seen_far = TF.resize(far, [H, W], antialias=False)
        far_right, close_right = score(backend, seen_far, low), score(backend, pixels, high)
        runs[sigma] = pixels, far, None
        if far_right is not None and close_right is not None:
            far_sure, close_sure = sure(backend, seen_far, low), sure(backend, pixels, high)
            runs[sigma] = pixels, far, (far_sure * close_sure, far_right * close_right)
            rows.append(
                {
                    "sigma": sigma,
                    "far": float(far_right.mean()),
                    "close": float(close_right.mean()),
                    "both": float((far_right * close_right).mean()),
                    "far_confident": float(far_sure.mean()),
                    "close_confident": float(close_sure.mean()),
                    "both_confident": float((far_sure * close_sure).mean()),
                }
            )
    best = (
        max(rows, key=lambda r: (r["both_confident"], r["both"], r["far"] + r["close"]))["sigma"]
        if rows
        else p.sigmas[0]
    )
    pixels, far, read = runs[best]
    # each pair's rates at the best σ, and the rule that picks what the figure shows: read
    # confidently at both distances most often, then plainly, then the order tried
    pairs = [{"prompts": pair, "index": k} for k, pair in enumerate(tried)]
    if read is not None:
        for k, row in enumerate(pairs):
            part = slice(k * n, (k + 1) * n)
            row |= {
                "both": float(read[1][part].mean()),
                "both_confident": float(read[0][part].mean()),
            }
    ranked = sorted(
        pairs, key=lambda r: (-r.get("both_confident", 0), -r.get("both", 0), r["index"])
    )
    shown = sorted(r["index"] for r in ranked[: p.shown or len(pairs)])
    on_show = [tried[k] for k in shown]
    # every candidate of each pair shown: close up, then from afar (enlarged back, as crisp pixels)
    both_views = torch.stack([pixels, TF.resize(far, [H, W], interpolation=0)])  # (2, pairs·n, …)
    both_views = both_views.unflatten(1, (len(tried), n))[:, shown]  # (2, shown, n, C, H, W)
    small = f"{H // p.far_scale}×{W // p.far_scale}"
    figs.image_table(
        both_views.transpose(0, 1).flatten(0, 1),  # (shown·2, n, C, H, W)
        ctx.out / "hybrids.webp",
        row_labels=[
            f"{short([lo], 14)[0]} / {short([hi], 14)[0]}: {where}"
            for lo, hi in on_show
            for where in ("close up", f"afar ({small})")
        ],
        cell=cell(backend),
        marked=None
        if read is None
        else read[0].reshape(len(tried), 1, n)[shown].expand(-1, 2, -1).reshape(-1, n).bool(),
    )
    first = [k * n for k in shown]  # the first candidate of each pair shown
    figs.actual_size([[pixels[i], far[i]] for i in first], ctx.out / "hybrids_actual_size.webp")
    chosen = (
        f"the {len(shown)} of {len(tried)} pairs read confidently at both distances most often"
        if len(shown) < len(tried)
        else "each pair"
    )
    figures = [
        Figure(
            "hybrids.webp",
            f"Every candidate ({n} per pair) of {chosen}, at \\(\\sigma = {best:g}\\) (kernel "
            f"{p.kernel_size}): low frequencies of the first prompt, high of the second; close up, "
            f"and from afar ({small}, enlarged)."
            + (" Green frames: read confidently right at both distances." if rows else ""),
            pixelated=backend.spec.pixelated,
        ),
        Figure(
            "hybrids_actual_size.webp",
            f"The same at actual size: {H}×{W} pixels, and {small} as seen from afar",
        ),
    ]
    if len(shown) < len(tried) and rows:
        figs.pair_rates(
            {tuple(r["prompts"]): (r["both_confident"], r["both"]) for r in pairs},
            list(backend.spec.classes),
            ctx.out / "hybrids_tried.webp",
            rows="seen from afar (low frequencies)",
            columns="seen close up (high frequencies)",
            marked={tuple(tried[k]) for k in shown},
        )
        figures.append(
            Figure(
                "hybrids_tried.webp",
                f"Every pair tried at \\(\\sigma = {best:g}\\), {n} candidates each: the share "
                "read confidently right at both distances, and in brackets plainly right; framed: "
                "the pairs shown",
            )
        )
    metrics = {}
    if rows:
        for r in rows:
            for kind in ("far", "close", "both", "both_confident"):
                metrics[f"{kind}_sigma_{r['sigma']:g}"] = r[kind]
        top = next(r for r in rows if r["sigma"] == best)
        metrics |= {
            "far_read_as_low": top["far"],
            "close_read_as_high": top["close"],
            "both_ways": sum(pairs[k]["both"] for k in shown) / len(shown),
            "both_ways_confident": sum(pairs[k]["both_confident"] for k in shown) / len(shown),
            "both_ways_tried": top["both"],
            "both_ways_confident_tried": top["both_confident"],
            "best_sigma": best,
            "real_confident_right_far": real_digits(backend)["test_confident_right_quarter_size"],
            "real_confident_right": real_digits(backend)["test_confident_right"],
        }
        if len(rows) > 1:
            figs.rate_plot(
                [r["sigma"] for r in rows],
                {
                    "far view read as the first digit": [r["far"] for r in rows],
                    "close view read as the second": [r["close"] for r in rows],
                    "both": [r["both"] for r in rows],
                    "both, confidently": [r["both_confident"] for r in rows],
                },
                ctx.out / "sweep.webp",
                xlabel="σ of the low-pass filter (pixels)",
                title="How hybrids read, by σ",
            )
            figures.append(
                Figure(
                    "sweep.webp",
                    f"Share of {len(low_prompts)} hybrids read right from afar, close up, and "
                    "both, for each \\(\\sigma\\)",
                )
            )
    figures += upsampled(
        backend,
        backend.to_model(pixels[first]),
        [hi for _, hi in on_show],
        rng(p.seed),
        ctx.out,
        len(shown),
    )
    samples = {
        "images": pixels,
        "far": far,
        "prompts_low": low_prompts,
        "prompts_high": high_prompts,
        "sigma": [best] * len(pixels),
        "seed": [p.seed] * len(pixels),  # the batch's: candidate k of pair a is a·n + k
        "candidate": [k for _ in tried for k in range(n)],
        "shown": [a in shown for a in range(len(tried)) for _ in range(n)],
    }
    if read is not None:
        samples |= {"labels_low": low, "labels_high": high, "confident_both": read[0].bool()}
    return Result(
        metrics=metrics,
        figures=figures,
        samples=samples,
        data={
            "rows": rows,
            "best_sigma": best,
            "pairs": pairs,
            "shown": shown,
            "ranked": [r["index"] for r in ranked],
            "candidates": n,
        },
    )
