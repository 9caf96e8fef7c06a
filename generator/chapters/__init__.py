"""The table of sections, in page order: the write-up's numbering, titles, parameters, needs and runs.

Each section's code is a function `run(params, ctx) -> Result` in one of the
modules beside this one, grouped by the write-up's chapters; its parameters
are a class in params.py and their values live in gen.yaml. Nothing here
imports torch (see section.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import UsageError
from ..section import Section
from . import params as p

SECTIONS = (
    # Part A: a pretrained model, the backend (--backend)
    Section(
        "a0",
        "Text-to-image with the pretrained model",
        p.TextToImageParams,
        "a_sampling:text_to_image",
        version=2,
        uses_backend=True,
    ),
    Section(
        "a1.1",
        "The forward process",
        p.ForwardParams,
        "a_denoising:forward_process",
        version=2,
        uses_backend=True,
    ),
    Section(
        "a1.2",
        "Classical denoising",
        p.BlurParams,
        "a_denoising:classical_denoising",
        ("a1.1",),
        version=2,
        uses_backend=True,
    ),
    Section(
        "a1.3",
        "One-step denoising",
        p.OneStepParams,
        "a_denoising:one_step_denoising",
        ("a1.1",),
        version=2,
        uses_backend=True,
    ),
    Section(
        "a1.4",
        "Iterative denoising",
        p.IterativeParams,
        "a_denoising:iterative_denoising",
        ("a1.1", "a1.2"),
        version=2,
        uses_backend=True,
    ),
    Section(
        "a1.5",
        "Sampling from pure noise",
        p.NoiseSampleParams,
        "a_sampling:sampling",
        version=2,
        uses_backend=True,
    ),
    Section(
        "a1.6",
        "Classifier-free guidance",
        p.CFGParams,
        "a_sampling:cfg",
        version=3,
        uses_backend=True,
    ),
    Section(
        "a1.7",
        "Image-to-image translation (SDEdit)",
        p.SDEditParams,
        "a_editing:image_to_image",
        version=3,
        uses_backend=True,
    ),
    Section(
        "a1.7.1",
        "Editing a web image and drawings",
        p.SDEditParams,
        "a_editing:edit_drawings",
        version=3,
        uses_backend=True,
    ),
    Section(
        "a1.7.2",
        "Inpainting",
        p.InpaintParams,
        "a_editing:inpainting",
        version=2,
        uses_backend=True,
    ),
    Section(
        "a1.7.3",
        "Text-conditional image-to-image",
        p.SDEditParams,
        "a_editing:text_image_to_image",
        version=3,
        uses_backend=True,
    ),
    Section(
        "a1.8",
        "Visual anagrams",
        p.AnagramParams,
        "a_illusions:visual_anagrams",
        version=2,
        uses_backend=True,
    ),
    Section(
        "a1.9",
        "Hybrid images",
        p.HybridParams,
        "a_illusions:hybrid_images",
        version=3,
        uses_backend=True,
    ),
    # Part B: UNets trained on MNIST
    Section("b1.1", "The UNet", p.UNetParams, "b_denoiser:unet_architecture"),
    Section("b1.2", "The noising process", p.NoisingParams, "b_denoiser:noising", version=2),
    Section(
        "b1.2.1",
        "Training the single-step denoiser",
        p.TrainDenoiserParams,
        "b_denoiser:train_denoiser",
        ("b1.1",),
    ),
    Section(
        "b1.2.2",
        "Out-of-distribution noise",
        p.OutOfDistributionParams,
        "b_denoiser:out_of_distribution",
        ("b1.2", "b1.2.1"),
        version=2,
    ),
    Section("b2.1", "Time conditioning", p.UNetParams, "b_training:time_unet"),
    Section(
        "b2.2",
        "Training the time-conditioned DDPM",
        p.DDPMParams,
        "b_training:train_time_ddpm",
        ("b2.1",),
    ),
    Section(
        "b2.0",
        "An MNIST classifier for scoring samples",
        p.ClassifierParams,
        "b_training:mnist_classifier",
    ),
    Section(
        "b2.3",
        "Sampling from the time-conditioned DDPM",
        p.DDPMSampleParams,
        "b_sampling:sample_time_ddpm",
        ("b2.2", "b2.0"),
        version=2,
    ),
    Section("b2.4", "Class conditioning", p.ClassDDPMParams, "b_training:train_class_ddpm"),
    Section(
        "b2.5",
        "Sampling with classifier-free guidance",
        p.GuidedSampleParams,
        "b_sampling:sample_class_ddpm",
        ("b2.4", "b2.0"),
        version=3,
    ),
)


def all_sections() -> dict[str, Section]:
    """Every section, in page order."""
    return {s.id: s for s in SECTIONS}


def _selects(selector: str, section_id: str) -> bool:
    # "b" selects b1.1...; "b1" selects b1.1 and b1.2.2 but not b10; "a1.7" selects a1.7.1.
    if section_id == selector:
        return True
    if not section_id.startswith(selector):
        return False
    following = section_id[len(selector)]
    return following == "." or (selector.isalpha() and following.isdigit())


def needed(ids: Iterable[str], backend_needs: tuple[str, ...] = ()) -> list[str]:
    """Every section that `ids` need, directly or through others (not `ids` themselves, unless needed)."""
    sections = all_sections()
    found: list[str] = []
    stack = [n for sid in ids for n in sections[sid].needs_on(backend_needs)]
    while stack:
        sid = stack.pop()
        if sid not in found:
            found.append(sid)
            stack.extend(sections[sid].needs_on(backend_needs))
    return found


def select(
    selectors: list[str], *, include_needs: bool = True, backend_needs: tuple[str, ...] = ()
) -> list[Section]:
    """The sections the selectors name, plus what they need, in dependency order."""
    sections = all_sections()
    chosen: set[str] = set()
    for selector in selectors:
        matched = [sid for sid in sections if _selects(selector, sid)]
        if not matched:
            parts = sorted({sid[0] for sid in sections})
            raise UsageError(
                f"unknown section '{selector}'; valid: {', '.join(parts + list(sections))} (see `gen list`)"
            )
        chosen.update(matched)
    if include_needs:
        chosen.update(needed(chosen, backend_needs))
    return in_dependency_order([s for sid, s in sections.items() if sid in chosen], backend_needs)


def in_dependency_order(chosen: list[Section], backend_needs: tuple[str, ...]) -> list[Section]:
    """`chosen` in page order, except that every section comes after what it needs.

    Part A comes first on the page, but on the local backend it needs b2.4.
    """
    by_id = {s.id: s for s in chosen}
    ordered: list[Section] = []
    done: set[str] = set()

    def visit(s: Section) -> None:
        if s.id in done:
            return
        done.add(s.id)
        for need in s.needs_on(backend_needs):
            if need in by_id:
                visit(by_id[need])
        ordered.append(s)

    for s in chosen:
        visit(s)
    return ordered
