"""What the renderer puts on the pages for a reader: typeset captions, honest numbers, only the files used."""

from __future__ import annotations

import json
import re

from generator.render import _format_db, caption


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


def test_an_exact_copy_has_infinite_psnr_shown_as_such(built):
    assert _format_db(None) == "∞" and _format_db(12.3456) == "12.35"
    data = json.loads((built / "docs/assets/b1.2.2/data.json").read_text())
    exact = [row for row in data["rows"] if row["sigma"] == 0]
    assert exact and exact[0]["psnr_noisy"] is None  # JSON has no infinity: null stands for it
    assert re.search(
        r"^\| 0\.0 \| [0-9.]+ \| [0-9.]+ \| ∞ \|$", (built / "docs/part-b.md").read_text(), re.M
    )
    assert "100.00" not in (built / "docs/part-b.md").read_text()


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


def test_each_section_publishes_the_data_its_page_is_written_from(built):
    for record in built.glob("docs/assets/*/record.json"):
        assert (record.parent / "data.json").is_file(), record.parent.name


def test_every_page_says_which_profile_backend_and_machine_made_it(built):
    for page in ("index.md", "part-a.md", "part-b.md"):
        text = (built / "docs" / page).read_text()
        assert '!!! abstract "How this page was made"' in text
        assert re.search(
            r"rofile <code>smoke</code>.*, on .+ \(\d+ cores\), (no GPU|GPU .+), torch ", text
        ), page
    assert "the local backend" in (built / "docs/part-a.md").read_text()


def test_the_home_page_links_a_thumbnail_and_a_key_number_for_every_section(built):
    from generator.sections import all_sections

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
