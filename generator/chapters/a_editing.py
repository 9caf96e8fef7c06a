"""Part A, 1.7: editing images with the model: SDEdit on photos and drawings, inpainting, edits towards a prompt."""

from __future__ import annotations

import torch

from ..diffusion.samplers import classifier_free, inpaint, sdedit
from ..figures import image_table
from ..inputs import load_mask
from ..section import Figure, Result
from .common import cell, generator, input_image, name_of, quoted, table, upsampled_table
from .params import InpaintParams, SDEditParams


def _guided(backend, p):
    den = backend.denoiser
    return classifier_free(den, den.encode([p.prompt]), den.encode([""]), p.guidance)


def _sdedit(p: SDEditParams, ctx, caption: str) -> Result:
    """Each image noised to timesteps[i_start] and denoised with CFG, for every i_start (Meng et al. 2022)."""
    backend = ctx.backend()
    eps_fn = _guided(backend, p)
    gen = generator(p.seed)
    ts = backend.timesteps
    rows, edits, originals = [], [], []
    for spec in p.images:
        x_orig = input_image(ctx, backend, spec)
        row = [
            sdedit(eps_fn, x_orig, ts, i, backend.denoiser.alphas_cumprod, generator=gen)
            for i in p.i_starts
        ]
        edits += row
        originals.append(x_orig)
        rows.append(torch.cat(row + [x_orig]).cpu())
    table(
        backend,
        torch.stack(rows),
        ctx.out / "edits.png",
        row_labels=[name_of(s) for s in p.images],
        col_labels=[f"i_start {i}\nt = {ts[i]}" for i in p.i_starts] + ["original"],
    )
    x = torch.cat(edits)
    figures = [
        Figure(
            "edits.png",
            caption.format(prompt=quoted(p.prompt), guidance=p.guidance),
            pixelated=backend.spec.pixelated,
        )
    ]
    if upsampled_table(
        backend, x, [p.prompt] * len(edits), gen, ctx.out / "upsampled.png", len(p.images)
    ):
        figures.append(Figure("upsampled.png", "The edits upsampled to 256×256 by stage II"))
    samples = {
        "images": backend.to_pixels(x),
        "i_start": [i for _ in p.images for i in p.i_starts],
        "source": [s for s in p.images for _ in p.i_starts],
    }
    metrics, reads = {}, []
    if (
        backend.scorer is not None
    ):  # per i_start: is an edit read as its input is, and as the prompt asks?
        grid = backend.to_pixels(x).unflatten(
            0, (len(p.images), len(p.i_starts))
        )  # (images, i_starts, C, H, W)
        seen = backend.scorer.predict(backend.to_pixels(torch.cat(originals)))  # (images,)
        asked = backend.labels_of([p.prompt])
        for k, i in enumerate(p.i_starts):
            read = backend.scorer.predict(grid[:, k])
            row = {"i_start": i, "t": ts[i], "as_input": float((read == seen).float().mean())}
            if asked is not None:
                row["as_prompt"] = float((read == asked).float().mean())
            reads.append(row)
            metrics |= {
                f"{name}_i_start_{i}": v for name, v in row.items() if name.startswith("as_")
            }
        for name in reads[
            0
        ]:  # over every edit, whatever the i_starts: what a sweep of i_start plots
            if name.startswith("as_"):
                metrics[name] = sum(r[name] for r in reads) / len(reads)
        samples["input_read_as"] = seen.repeat_interleave(len(p.i_starts))
    return Result(
        metrics=metrics, figures=figures, samples=samples, data={"timesteps": ts, "rows": reads}
    )


def image_to_image(p: SDEditParams, ctx) -> Result:
    return _sdedit(
        p,
        ctx,
        "SDEdit with {prompt}, \\(\\gamma = {guidance:g}\\): the later denoising starts, the closer to the original",
    )


def edit_drawings(p: SDEditParams, ctx) -> Result:
    return _sdedit(
        p,
        ctx,
        "SDEdit of each input (rows: their file names) with {prompt}, \\(\\gamma = {guidance:g}\\)",
    )


def text_image_to_image(p: SDEditParams, ctx) -> Result:
    return _sdedit(p, ctx, "SDEdit towards the {prompt}, \\(\\gamma = {guidance:g}\\)")


def inpainting(p: InpaintParams, ctx) -> Result:
    backend = ctx.backend()
    eps_fn = _guided(backend, p)
    gen = generator(p.seed)
    originals, masks, results = [], [], []
    for spec, mask_spec in zip(p.images, p.masks):
        x_orig = input_image(ctx, backend, spec)
        mask = load_mask(mask_spec, ctx.config.root, backend.shape[-2:]).to(x_orig.device)  # (H, W)
        results.append(
            inpaint(
                eps_fn,
                x_orig,
                mask,
                backend.timesteps,
                backend.denoiser.alphas_cumprod,
                generator=gen,
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
    image_table(
        torch.stack([orig_pixels, m_cpu.expand_as(pixels), holed, pixels], dim=1),
        ctx.out / "inpainting.png",
        row_labels=[name_of(s) for s in p.images],
        col_labels=["original", "mask", "kept", "inpainted"],
        cell=cell(backend),
    )
    caption = f"Inpainting with {quoted(p.prompt)}, \\(\\gamma = {p.guidance:g}\\): new content only where the mask is white"
    figures = [Figure("inpainting.png", caption, pixelated=backend.spec.pixelated)]
    if upsampled_table(
        backend, x, [p.prompt] * len(results), gen, ctx.out / "upsampled.png", len(results)
    ):
        figures.append(
            Figure("upsampled.png", "The inpainted images upsampled to 256×256 by stage II")
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
