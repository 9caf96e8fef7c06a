"""Bad input, table-driven: one line on stderr that names the problem, exit 2, and docs/ and the
store unchanged.

Each case is a `gen` command on a copy of the project (not built: nothing in the
table may run long enough to need a build), with at most one change made for it
(gen.yaml rewritten, an input file written, an environment variable), undone
after it. The project is copied once for the whole table.

"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import DATA_DIR, copy_project, tree_digest

SMOKE = ("--profile", "smoke", "--backend", "local")
MNIST_RAW = DATA_DIR / "MNIST" / "raw"


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(width: int, height: int, pixels: bytes) -> bytes:
    """A grey PNG; `pixels` is the compressed image data as it is (so it can be made wrong on
    purpose)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", pixels)
        + _png_chunk(b"IEND", b"")
    )


def _good_png(side: int = 28) -> bytes:
    return _png(side, side, zlib.compress(b"".join(b"\x00" + bytes(side) for _ in range(side))))


@dataclass
class Case:
    name: str
    args: tuple[str, ...]
    named: str  # what the one line must contain
    yaml_edit: Callable[[dict], object] | None = None  # changes gen.yaml's parsed content
    yaml_text: Callable[[str], str | bytes] | None = None  # or its text
    files: dict[str, bytes] = field(default_factory=dict)  # written into the project
    env: Callable[[Path, Path], dict[str, str]] | None = (
        None  # (project, scratch folder) → variables
    )


def _set(*items: str, section: str = "b1") -> tuple[str, ...]:
    return ("build", section, *SMOKE, *(a for item in items for a in ("--set", item)))


def _mnist_copy(scratch: Path, broken: str, content: Callable[[bytes], bytes]) -> dict[str, str]:
    """GEN_DATA_DIR holding MNIST with one file replaced (the others linked to the real ones)."""
    raw = scratch / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for source in MNIST_RAW.iterdir():
        if source.name == broken:
            (raw / source.name).write_bytes(content(source.read_bytes()))
        else:
            (raw / source.name).symlink_to(source)
    return {"GEN_DATA_DIR": str(scratch / "data")}


def _section(name: str, value):
    def edit(data):
        data["sections"][name] = value

    return edit


CASES = [
    # the command line
    Case("unknown section", ("build", "nosuch", *SMOKE), "nosuch"),
    Case("unknown profile", ("build", "b1", "--profile", "fast"), "fast"),
    Case("unknown device", ("build", "b1", "--profile", "smoke", "--device", "tpu"), "tpu"),
    Case(
        "cuda without a driver",
        ("build", "b1.1", "--profile", "smoke", "--device", "cuda"),
        "--device cuda",
    ),
    Case("hex integer", _set("b1.2.1.epochs=0x2"), "b1.2.1.epochs"),
    Case("integer with underscores", _set("b1.2.1.epochs=1_0"), "b1.2.1.epochs"),
    Case("sexagesimal integer", _set("b1.2.1.epochs=1:30"), "b1.2.1.epochs"),
    Case("5,000-digit integer", _set("b1.2.1.epochs=" + "9" * 5000), "b1.2.1.epochs"),
    Case("seed beyond 64 bits", _set(f"b1.2.1.seed={2**64}"), "b1.2.1.seed"),
    Case("negative seed", _set("b1.2.1.seed=-1"), "b1.2.1.seed"),
    Case("bool for an integer", _set("b1.2.1.epochs=true"), "b1.2.1.epochs"),
    Case("fraction for an integer", _set("b1.2.1.epochs=2.5"), "b1.2.1.epochs"),
    Case("negative learning rate", _set("b1.2.1.lr=-1"), "b1.2.1.lr"),
    Case("not a number", _set("b1.2.1.lr=nan"), "b1.2.1.lr"),
    Case("infinite guidance", _set("a1.6.guidance=1e400", section="a1.6"), "a1.6.guidance"),
    Case("unknown name", _set("b1.2.1.epoch=2"), "b1.2.1.epoch"),
    Case("no value", _set("b1.2.1.epochs"), "KEY=VALUE"),
    Case(
        "prompt the model does not know",
        _set('a1.6.prompts=["a cat"]', section="a1.6"),
        "a1.6.prompts",
    ),
    Case("unknown view", _set("a1.8.views=[mirror]", section="a1.8"), "a1.8.views"),
    Case("even kernel", _set("a1.2.kernel_size=4", section="a1.2"), "a1.2.kernel_size"),
    Case("empty σ list", _set("a1.9.sigmas=[]", section="a1.9"), "a1.9.sigmas"),
    Case("stride 0", _set("local.stride=0", section="a1.4"), "local.stride"),
    Case("i_start past the schedule", _set("a1.4.i_start=500", section="a1.4"), "a1.4.i_start"),
    Case("MNIST index in another script", _set("a1.1.image=mnist:٣", section="a1.1"), "mnist:٣"),
    Case("MNIST index out of range", _set("a1.1.image=mnist:10000", section="a1.1"), "mnist:10000"),
    Case("missing image", _set("a1.1.image=nowhere.png", section="a1.1"), "nowhere.png"),
    Case(
        "backwards rectangle",
        _set('a1.7.2.masks=["rect:0.5,0.2,0,1","rect:0,1,0,1","rect:0,1,0,1"]', section="a1.7.2"),
        "rect:0.5,0.2,0,1",
    ),
    Case(
        "fewer masks than images",
        _set('a1.7.2.masks=["rect:0,1,0,1"]', section="a1.7.2"),
        "a1.7.2.masks",
    ),
    # input files
    Case(
        "text named .png",
        _set("a1.1.image=fake.png", section="a1.1"),
        "fake.png",
        files={"fake.png": b"hello"},
    ),
    Case(
        "truncated PNG",
        _set("a1.1.image=cut.png", section="a1.1"),
        "cut.png",
        files={"cut.png": _good_png()[:60]},
    ),
    Case(
        "corrupt pixel data",
        _set("a1.1.image=bad.png", section="a1.1"),
        "bad.png",
        files={"bad.png": _png(28, 28, b"\x78\x9c" + b"\xff" * 40)},
    ),  # valid chunks, data that does not inflate
    Case(
        "decompression bomb",
        _set("a1.1.image=bomb.png", section="a1.1"),
        "bomb.png",
        files={"bomb.png": _png(20000, 20000, zlib.compress(b""))},
    ),
    Case(
        "mask of another size",
        _set("a1.7.2.images=[small.png]", "a1.7.2.masks=[big.png]", section="a1.7.2"),
        "big.png",
        files={"small.png": _good_png(28), "big.png": _good_png(40)},
    ),
    # gen.yaml
    Case("key twice", ("list", *SMOKE), "appears twice", yaml_text=lambda t: t + "seed: 46\n"),
    Case("integer key", ("list", *SMOKE), "not a name", yaml_text=lambda t: t + "1: 2\n"),
    Case("not UTF-8", ("list", *SMOKE), "UTF-8", yaml_text=lambda t: t.encode() + b"# \xff\xfe\n"),
    Case(
        "nesting thousands deep",
        ("list", *SMOKE),
        "gen.yaml",
        yaml_text=lambda t: "a: " + "[" * 5000 + "]" * 5000,
    ),
    Case("not YAML", ("list", *SMOKE), "gen.yaml", yaml_text=lambda t: t + "sections: [\n"),
    Case("a list at the top", ("list", *SMOKE), "gen.yaml", yaml_text=lambda t: "- 1\n- 2\n"),
    Case(
        "sections as a list",
        ("list", *SMOKE),
        "sections",
        yaml_edit=lambda d: d.update(sections=[1, 2]),
    ),
    Case(
        "profiles as a list",
        ("list", *SMOKE),
        "profiles",
        yaml_edit=lambda d: d.update(profiles=["quick"]),
    ),
    Case("a section as a number", ("list", *SMOKE), "b1.1", yaml_edit=_section("b1.1", 5)),
    Case("a section as a list", ("list", *SMOKE), "b1.1", yaml_edit=_section("b1.1", [1, 2])),
    Case(
        "unknown top-level key",
        ("list", *SMOKE),
        "sectons",
        yaml_edit=lambda d: d.update(sectons={}),
    ),
    Case(
        "unknown profile in the file",
        ("list", *SMOKE),
        "fast",
        yaml_edit=lambda d: d["profiles"].update(fast={}),
    ),
    Case(
        "unknown section in an overlay",
        ("list", *SMOKE),
        "b9.9",
        yaml_edit=lambda d: d["profiles"]["smoke"].update({"b9.9": {"epochs": 1}}),
    ),
    Case(
        "bad value in another profile",
        ("list", *SMOKE),
        "profile quick",
        yaml_edit=lambda d: d["profiles"]["quick"]["b1.2.1"].update(epochs=-2),
    ),
    Case(
        "misspelt parameter",
        ("list", *SMOKE),
        "did you mean",
        yaml_edit=lambda d: d["sections"]["b1.2.1"].update(epoch=2),
    ),
    Case("seed as text", ("list", *SMOKE), "seed", yaml_edit=lambda d: d.update(seed="forty-five")),
    # the cache and data folders
    Case(
        "cache folder is a file",
        ("build", "b1.1", *SMOKE),
        "GEN_CACHE_DIR",
        env=lambda p, s: (s / "file").write_text("x") and {"GEN_CACHE_DIR": str(s / "file")},
    ),
    Case(
        "cache folder under a file",
        ("build", "b1.1", *SMOKE),
        "GEN_CACHE_DIR",
        env=lambda p, s: (
            (s / "file").write_text("x") and {"GEN_CACHE_DIR": str(s / "file" / "cache")}
        ),
    ),
    Case(
        "cache folder inside docs/",
        ("build", "b1.1", *SMOKE),
        "docs/",
        env=lambda p, s: {"GEN_CACHE_DIR": str(p / "docs" / "cache")},
    ),
    Case(
        "lock is a folder",
        ("build", "b1.1", *SMOKE),
        "lock",
        env=lambda p, s: (
            (s / "cache" / "lock").mkdir(parents=True) or {"GEN_CACHE_DIR": str(s / "cache")}
        ),
    ),
    Case(
        "MNIST file of the wrong size",
        ("build", "b1.1", *SMOKE, "--force"),
        "t10k-labels-idx1-ubyte",
        env=lambda p, s: _mnist_copy(s, "t10k-labels-idx1-ubyte", lambda b: b[:-8]),
    ),
    Case(
        "MNIST file of random labels",
        ("build", "b1.1", *SMOKE, "--force"),
        "t10k-labels-idx1-ubyte",
        env=lambda p, s: _mnist_copy(
            s, "t10k-labels-idx1-ubyte", lambda b: b[:8] + bytes(range(256)) * 39 + b[8:24]
        ),
    ),
]


@pytest.fixture(scope="module")
def table_project(tmp_path_factory) -> Path:
    return copy_project(tmp_path_factory.mktemp("bad_inputs") / "project")


# a1.6's last build as docs/ holds it: what `--metric` is checked against before a sweep runs
A16_RECORD = json.dumps({"id": "a1.6", "metrics": {"accuracy": 1.0, "confident": 0.9}}).encode()
SWEEP = ("sweep", "a1.6.guidance=0,1", *SMOKE)

CASES += [
    # GEN_PRECISION, the Ray executor's settings, a sweep's metrics
    Case(
        "unknown GEN_PRECISION",
        ("list", *SMOKE),
        "GEN_PRECISION",
        env=lambda p, s: {"GEN_PRECISION": "fp8"},
    ),
    Case(
        "GEN_RAY_CPUS not a number",
        (*SWEEP, "--executor", "ray"),
        "GEN_RAY_CPUS",
        env=lambda p, s: {"GEN_RAY_CPUS": "abc"},
    ),
    Case(
        "a Ray client address nobody answers",
        (*SWEEP, "--executor", "ray", "--address", "ray://127.0.0.1:1"),
        "ray://127.0.0.1:1",
    ),
    Case(
        "a Ray address nobody answers, from RAY_ADDRESS",
        ("build", "b1.1", *SMOKE, "--executor", "ray"),
        "127.0.0.1:1",
        env=lambda p, s: {"RAY_ADDRESS": "127.0.0.1:1"},
    ),
    Case(
        "a metric the section does not report",
        (*SWEEP, "--metric", "nosuch"),
        "nosuch",
        files={"docs/assets/a1.6/record.json": A16_RECORD},
    ),
    Case(
        "a misspelt metric",
        (*SWEEP, "--metric", "acuracy"),
        "did you mean 'accuracy'",
        files={"docs/assets/a1.6/record.json": A16_RECORD},
    ),
]


def test_the_table_is_long_enough():
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_in_one_line_and_changes_nothing(table_project, tmp_path, case):
    project = table_project
    config = project / "gen.yaml"
    original = config.read_bytes()
    env = {**os.environ, "GEN_DATA_DIR": str(DATA_DIR), "TQDM_DISABLE": "1"}
    env.pop("GEN_CACHE_DIR", None)
    try:
        if case.yaml_edit:
            data = yaml.safe_load(original)
            case.yaml_edit(data)
            config.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        if case.yaml_text:
            text = case.yaml_text(original.decode())
            config.write_bytes(text if isinstance(text, bytes) else text.encode())
        for name, content in case.files.items():
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            (project / name).write_bytes(content)
        if case.env:
            env.update(case.env(project, tmp_path))
        before = tree_digest(project / "docs", project / ".gen")
        script = Path(sys.executable).with_name("gen")
        result = subprocess.run(
            [str(script), *case.args], cwd=project, env=env, capture_output=True, text=True
        )
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (
            result.returncode,
            result.stdout[-500:],
            result.stderr[-2000:],
        )
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert case.named in lines[0], lines[0]
        assert tree_digest(project / "docs", project / ".gen") == before
    finally:
        config.write_bytes(original)
        for name in case.files:
            (project / name).unlink(missing_ok=True)
        shutil.rmtree(project / "docs" / "cache", ignore_errors=True)


@pytest.mark.slow
def test_a_changed_input_image_makes_its_section_stale(project):
    """The cache key holds the content of the files the parameters name, not only their names."""
    image = project / "digit.png"
    image.write_bytes(_good_png())
    args = ("--profile", "smoke", "--backend", "local", "--set", "a1.1.image=digit.png")
    from conftest import gen

    gen(project, "build", "a1.1", *args)
    assert "fresh" in _state(gen(project, "list", *args).stdout, "a1.1")
    image.write_bytes(
        _png(28, 28, zlib.compress(b"".join(b"\x00" + bytes([255]) * 28 for _ in range(28))))
    )
    assert "stale" in _state(gen(project, "list", *args).stdout, "a1.1")


def _state(listing: str, section_id: str) -> str:
    return next(line for line in listing.splitlines() if line.split()[0] == section_id)
