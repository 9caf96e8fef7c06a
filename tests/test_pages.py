"""What the renderer puts on the pages for a reader: typeset captions, honest numbers, only the
files used."""

from __future__ import annotations

import json
import re

import pytest

from generator.render import SectionView, caption
from generator.section import Headline, db


def test_caption_maths_is_left_for_katex_and_the_rest_shown_as_text():
    shown = caption("x_t (top) and \\(\\hat x_0\\) at \\(t = 5\\), prompt “*a* | b”")
    assert (
        '<span class="arithmatex">\\(\\hat x_0\\)</span>' in shown
        and '<span class="arithmatex">\\(t = 5\\)</span>' in shown
    )
    assert (
        "x&#95;t" in shown and "&#42;a&#42; &#124; b" in shown
    )  # Markdown stays inert outside the maths
    # Maths that would need escaping is shown as text instead, never as markup.
    assert "<b>" not in caption("\\(<b>\\)") and "&#60;b&#62;" in caption("\\(<b>\\)")


def _view(headline, **record) -> SectionView:
    return SectionView("x1", "1", "t", "part-x.md", True, headline_of=headline, **record)


def test_a_headline_reads_value_then_label_or_the_value_in_its_label():
    def accuracy(r):
        return Headline("read as the digit asked for", f"{100 * r.metrics['accuracy']:.1f}%")

    def psnr(r):
        return Headline(f"PSNR at \\(t = {r.data['t']}\\): {{}} dB", "12.34")

    shown = _view(accuracy, metrics={"accuracy": 0.5}).headline
    assert shown == "50.0% read as the digit asked for"
    assert _view(psnr, data={"t": 225}).headline == "PSNR at \\(t = 225\\): 12.34 dB"
    assert _view(lambda r: None).headline == ""  # nothing to show: an empty card line
    assert _view(None).headline == ""


def test_a_headline_shows_no_markup_from_a_record():
    """A value is shown as text; a record that lacks what a headline reads, or holds a string where
    a formatter wants a number, gives an empty line instead of failing the render."""
    from generator.section import percent, plain

    assert (
        _view(lambda r: Headline("read", "<b>*x*</b>")).headline
        == "&#60;b&#62;&#42;x&#42;&#60;/b&#62; read"
    )

    def reads_t(r):
        return Headline(f"from \\(t = {plain(r.data['t'])}\\)", percent(r.metrics["share"]))

    assert _view(reads_t, data={"t": "<img src=x>"}, metrics={"share": 1}).headline == ""
    assert _view(reads_t, data={}, metrics={"share": 1}).headline == ""
    assert (
        _view(reads_t, data={"t": 5}, metrics={"share": "1"}).headline == "100.0% from \\(t = 5\\)"
    )
    with pytest.raises(ValueError):
        percent("<b>")


@pytest.mark.slow
def test_an_exact_copy_has_infinite_psnr_shown_as_such(built):
    assert db(None) == "∞" and db(12.3456) == "12.35"
    data = json.loads((built / "docs/assets/b1.2.2/data.json").read_text())
    exact = [row for row in data["rows"] if row["sigma"] == 0]
    assert exact and exact[0]["psnr_noisy"] is None  # JSON has no infinity: null stands for it
    assert re.search(
        r"^\| 0\.0 \| [0-9.]+ \| [0-9.]+ \| ∞ \|$", (built / "docs/part-b.md").read_text(), re.M
    )
    assert "100.00" not in (built / "docs/part-b.md").read_text()


@pytest.mark.slow
def test_only_the_input_images_a_built_section_names_are_published(built):
    shipped = sorted(p.name for p in (built / "docs/assets/inputs").iterdir())
    named = set()
    for record in built.glob("docs/assets/*/record.json"):
        named |= {
            v.rsplit("/", 1)[-1]
            for v in json.dumps(json.loads(record.read_text())["params"]).split('"')
            if v.startswith("site_assets/inputs/")
        }
    assert named and set(shipped) == named | {"CREDITS.md"}
    assert "astronaut.png" not in shipped  # a DeepFloyd input; the local backend edits digits


@pytest.mark.slow
def test_each_section_publishes_the_data_its_page_is_written_from(built):
    from generator.chapters import all_sections

    for sid in all_sections():  # the smoke build built every section of the table
        assert (built / "docs/assets" / sid / "record.json").is_file(), sid
        assert (built / "docs/assets" / sid / "data.json").is_file(), sid


@pytest.mark.slow
def test_every_page_says_which_profile_backend_and_machine_made_it(built):
    for page in ("index.md", "part-a.md", "part-b.md"):
        text = (built / "docs" / page).read_text()
        assert '!!! abstract "How this page was made"' in text
        assert re.search(
            r"rofile <code>smoke</code>.*, on .+ \(\d+ cores\), (no GPU|GPU .+), torch ", text
        ), page
    assert "the local backend" in (built / "docs/part-a.md").read_text()


@pytest.mark.slow
def test_the_home_page_links_a_thumbnail_and_a_key_number_for_every_section(built):
    from generator.chapters import all_sections

    home = (built / "docs/index.md").read_text()
    for section in all_sections().values():
        link = f"({section.page.replace('_', '-')}.md#{section.id})"
        card = re.search(
            r"^-   \*\*\["
            + re.escape(f"{section.number} {section.title}]{link}")
            + r"\*\*\n\n(.*)\n\n(.*)$",
            home,
            re.M,
        )
        assert card, section.id
        thumbnail, key = card.groups()
        assert key.strip(), section.id  # a number for every section
        record = json.loads((built / f"docs/assets/{section.id}/record.json").read_text())
        if record["figures"]:
            assert (
                f"(assets/{section.id}/{record['figures'][0]['file']})" in thumbnail
                and link in thumbnail
            ), section.id
