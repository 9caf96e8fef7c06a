"""MkDocs hooks (mkdocs.yml `hooks:`), loaded by path: nothing here may import the generator or
torch."""

from pathlib import Path


def on_post_build(config, **kwargs):
    """The theme ships source maps (about 1.2 MB) that only its own developers read: leave them out
    of the site."""
    for source_map in Path(config["site_dir"]).rglob("*.map"):
        source_map.unlink()
