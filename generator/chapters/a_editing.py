"""Part A, 1.7: editing images with the model: SDEdit on photos and drawings, inpainting, edits
towards a prompt."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ..errors import UsageError
from ..inputs import check_image, check_mask, load_mask
from ..section import Figure, Headline, Result, fixed, lazy, percent, plain, section
from .common import (
    cell,
    classes,
    input_image,
    labels_of,
    mean,
    name_of,
    quoted,
    rng,
    score,
    table,
    upsampled,
)
from .params import Guidance, OneStepParams, Spec

# Imported where a run first uses them: reading the table (gen list) imports no torch.
torch = lazy("torch")
samplers = lazy("..diffusion.samplers", __package__)
figs = lazy("..figures", __package__)

Images = Annotated[
    list[Spec], Field(min_length=1, max_length=8, description="input images: paths or mnist:N")
]


class SDEditParams(OneStepParams):
    images: Images
    i_starts: list[Annotated[int, Field(ge=0, le=100000)]] = Field(
        min_length=1, max_length=12, description="where denoising starts"
    )
    guidance: Guidance

    def check(self, config, sid):
        super().check(config, sid)
        for image in self.images:
            check_image(image, config.root)
        for i in self.i_starts:
            config.spec.check_schedule(config, f"{sid}.i_starts", i_start=i)

    def input_files(self):
        return list(self.images)


class InpaintParams(OneStepParams):
    images: Images
    masks: list[Spec] = Field(
        min_length=1,
        max_length=8,
        description="one mask per image: a picture of its size (white = new content) or "
        "rect:TOP,BOTTOM,LEFT,RIGHT",
    )
    guidance: Guidance

    def check(self, config, sid):
        if len(self.masks) != len(self.images):
            raise UsageError(
                f"bad value {sid}.masks: {len(self.masks)} masks for {len(self.images)} images; "
                "give one mask per image"
            )
        for image, mask in zip(self.images, self.masks):
            check_image(image, config.root)
            check_mask(mask, image, config.root)
        super().check(config, sid)

    def input_files(self):
        return [*self.images, *self.masks]


def _guided(backend, p):
    den = backend.denoiser
    return samplers.classifier_free(den, den.encode([p.prompt]), den.encode([""]), p.guidance)


def _sdedit(p: SDEditParams, ctx, caption: str) -> Result:
    """Each image noised to timesteps[i_start] and denoised with CFG, for every i_start (Meng et
    al. 2022)."""
    backend = ctx.backend()
    eps_fn = _guided(backend, p)
    gen = rng(p.seed)
    ts = backend.timesteps
    den = backend.denoiser
    rows, edits, originals = [], [], []
    for spec in p.images:
        x_orig = input_image(ctx, backend, spec)
        row = [
            samplers.sdedit(
                eps_fn,
                x_orig,
                ts,
                i,
                den.alphas_cumprod,
                generator=gen,
                variance_type=den.variance_type,
            )
            for i in p.i_starts
        ]
        edits += row
        originals.append(x_orig)
        rows.append(torch.cat(row + [x_orig]).cpu())
    table(
        backend,
        torch.stack(rows),
        ctx.out / "edits.webp",
        row_labels=[name_of(s) for s in p.images],
        col_labels=[f"i_start {i}\nt = {ts[i]}" for i in p.i_starts] + ["original"],
    )
    x = torch.cat(edits)
    figures = [
        Figure(
            "edits.webp",
            caption.format(prompt=quoted(p.prompt), guidance=p.guidance),
            pixelated=backend.spec.pixelated,
        )
    ]
    figures += upsampled(
        backend, x, [p.prompt] * len(edits), gen, ctx.out, len(p.images), "The edits"
    )
    samples = {
        "images": backend.to_pixels(x),
        "i_start": [i for _ in p.images for i in p.i_starts],
        "source": [s for s in p.images for _ in p.i_starts],
    }
    # Per i_start: is an edit read as its input is, and as the prompt asks?
    grid = backend.to_pixels(x).unflatten(0, (len(p.images), len(p.i_starts)))  # (images, i, …)
    seen = classes(backend, backend.to_pixels(torch.cat(originals)))  # (images,)
    asked = labels_of(backend, [p.prompt])
    reads = [
        {"i_start": i, "t": ts[i], "as_input": mean(score(backend, grid[:, k], seen))}
        | ({} if asked is None else {"as_prompt": mean(score(backend, grid[:, k], asked))})
        for k, i in enumerate(p.i_starts)
    ]
    reads = [r for r in reads if r["as_input"] is not None]  # none where nothing reads them
    metrics = {
        f"{name}_i_start_{r['i_start']}": v
        for r in reads
        for name, v in r.items()
        if name.startswith("as_")
    }
    # over every edit, whatever the i_starts: what a sweep of i_start plots
    for name in [n for n in reads[0] if n.startswith("as_")] if reads else []:
        metrics[name] = sum(r[name] for r in reads) / len(reads)
    if seen is not None:
        samples["input_read_as"] = seen.repeat_interleave(len(p.i_starts))
    return Result(
        metrics=metrics, figures=figures, samples=samples, data={"timesteps": ts, "rows": reads}
    )


def _sdedit_headline(r) -> Headline | None:
    if not r.data.get("rows"):
        return None
    row = r.data["rows"][-1]
    return Headline(
        f"keep the input's digit from \\(t = {plain(row['t'])}\\)", percent(row["as_input"])
    )


@section(
    "a1.7",
    "Image-to-image translation (SDEdit)",
    SDEditParams,
    version=5,
    uses_backend=True,
    headline=_sdedit_headline,
)
def image_to_image(p: SDEditParams, ctx) -> Result:
    return _sdedit(
        p,
        ctx,
        "SDEdit with {prompt}, \\(\\gamma = {guidance:g}\\): the later denoising starts, the "
        "closer to the original",
    )


@section(
    "a1.7.1",
    "Editing a web image and drawings",
    SDEditParams,
    version=5,
    uses_backend=True,
    headline=_sdedit_headline,
)
def edit_drawings(p: SDEditParams, ctx) -> Result:
    return _sdedit(
        p,
        ctx,
        "SDEdit of each input (rows: their file names) with {prompt}, \\(\\gamma = {guidance:g}\\)",
    )


@section(
    "a1.7.3",
    "Text-conditional image-to-image",
    SDEditParams,
    version=5,
    uses_backend=True,
    headline=_sdedit_headline,
)
def text_image_to_image(p: SDEditParams, ctx) -> Result:
    return _sdedit(p, ctx, "SDEdit towards the {prompt}, \\(\\gamma = {guidance:g}\\)")


def _inpainting_headline(r) -> Headline:
    return Headline(
        "largest change outside the mask: {}", fixed(r.metrics["max_change_outside_mask"], ".3g")
    )


@section(
    "a1.7.2",
    "Inpainting",
    InpaintParams,
    version=4,
    uses_backend=True,
    headline=_inpainting_headline,
)
def inpainting(p: InpaintParams, ctx) -> Result:
    backend = ctx.backend()
    eps_fn = _guided(backend, p)
    gen = rng(p.seed)
    originals, masks, results = [], [], []
    for spec, mask_spec in zip(p.images, p.masks):
        x_orig = input_image(ctx, backend, spec)
        mask = load_mask(mask_spec, ctx.config.root, backend.shape[-2:]).to(x_orig.device)  # (H, W)
        results.append(
            samplers.inpaint(
                eps_fn,
                x_orig,
                mask,
                backend.timesteps,
                backend.denoiser.alphas_cumprod,
                generator=gen,
                variance_type=backend.denoiser.variance_type,
            )
        )
        originals.append(x_orig)
        masks.append(mask)
    x, x_orig, m = (
        torch.cat(results),
        torch.cat(originals),
        torch.stack(masks)[:, None],
    )  # m: (N, 1, H, W)
    pixels, orig_pixels = backend.to_pixels(x), backend.to_pixels(x_orig)
    m_cpu = m.cpu()
    holed = orig_pixels * (1 - m_cpu) + 0.5 * m_cpu
    figs.image_table(
        torch.stack([orig_pixels, m_cpu.expand_as(pixels), holed, pixels], dim=1),
        ctx.out / "inpainting.webp",
        row_labels=[name_of(s) for s in p.images],
        col_labels=["original", "mask", "kept", "inpainted"],
        cell=cell(backend),
    )
    caption = (
        f"Inpainting with {quoted(p.prompt)}, \\(\\gamma = {p.guidance:g}\\): "
        "new content only where the mask is white"
    )
    figures = [Figure("inpainting.webp", caption, pixelated=backend.spec.pixelated)]
    figures += upsampled(
        backend, x, [p.prompt] * len(results), gen, ctx.out, len(results), "The inpainted images"
    )
    outside = (1 - m).bool().expand_as(x)
    return Result(
        metrics={
            "max_change_outside_mask": float((x - x_orig).abs()[outside].max())
            if outside.any()
            else 0.0
        },
        figures=figures,
        samples={"images": pixels, "masks": m_cpu.float(), "originals": orig_pixels},
    )
