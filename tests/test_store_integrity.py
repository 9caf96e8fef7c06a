"""The store checks itself: manifests, damaged entries rebuilt, `gen verify`, refs, leftovers,
checkpoints, modes."""

import hashlib
import json
import os
import shutil
import stat

import pytest
from conftest import gen, ran

from generator.store import DIR_MODE, MANIFEST, Store, write_atomic

KEY = hashlib.sha256(b"an entry").hexdigest()


def make_entry(store: Store, key: str = KEY, section_id: str = "b1.2") -> None:
    with store.staging(key, section_id) as folder:
        (folder / "record.json").write_text(json.dumps({"id": section_id, "metrics": {"x": 1.0}}))
        (folder / "data.json").write_text(json.dumps({"layers": [1, 2, 3]}))
        (folder / "public" / "noising.png").write_bytes(bytes(range(256)) * 8)
        (folder / "private" / "model.safetensors").write_bytes(b"weights" * 100)
    store.set_ref(section_id, key)


def test_a_good_entry_has_a_manifest_of_every_file_and_reads_back(tmp_path):
    store = Store(tmp_path)
    make_entry(store)
    entry = store.entry(KEY)
    assert entry.record["id"] == "b1.2" and entry.data == {"layers": [1, 2, 3]}
    assert store.last_entry("b1.2") == entry
    files = json.loads((entry.path / MANIFEST).read_text())["files"]
    assert set(files) == {
        "record.json",
        "data.json",
        "public/noising.png",
        "private/model.safetensors",
    }
    png = entry.public / "noising.png"
    assert files["public/noising.png"] == {
        "size": 2048,
        "sha256": hashlib.sha256(png.read_bytes()).hexdigest(),
    }
    assert stat.S_IMODE(entry.path.stat().st_mode) == DIR_MODE  # not mkdtemp's 0700


def _same_size(path, text):
    path.write_text(text.ljust(path.stat().st_size))


DAMAGE = {
    "invalid record.json": (
        lambda e: _same_size(e / "record.json", "{not json"),
        "record.json does not parse",
    ),
    "data.json not an object": (
        lambda e: _same_size(e / "data.json", "[1]"),
        "data.json is not a JSON object",
    ),
    "truncated png": (
        lambda e: os.truncate(e / "public/noising.png", 100),
        "public/noising.png is 100 bytes, the manifest says 2048",
    ),
    "deleted private file": (
        lambda e: (e / "private/model.safetensors").unlink(),
        "private/model.safetensors is missing",
    ),
    "an extra file": (
        lambda e: (e / "public/extra.png").write_bytes(b"x"),
        "public/extra.png is not in the manifest",
    ),
    "no manifest": (lambda e: (e / MANIFEST).unlink(), "no manifest"),
    "invalid manifest": (lambda e: (e / MANIFEST).write_text("{"), "manifest does not parse"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_entry_is_reported_once_and_counts_as_missing_until_rebuilt(
    tmp_path, capsys, damage
):
    make_entry(Store(tmp_path))
    mutate, problem = DAMAGE[damage]
    mutate(tmp_path / "store" / KEY)
    store = Store(tmp_path)
    assert store.entry(KEY) is None and store.last_entry("b1.2") is None
    assert store.entry(KEY) is None
    lines = capsys.readouterr().err.splitlines()
    assert (
        len(lines) == 1 and f"{KEY[:12]}… (b1.2) is damaged" in lines[0] and problem in lines[0]
    ), lines
    make_entry(store)  # the rebuild: same key, into the same Store
    assert store.entry(KEY) is not None


def test_verify_hashes_what_the_cheap_check_misses_and_repair_removes_it(tmp_path):
    make_entry(Store(tmp_path))
    png = tmp_path / "store" / KEY / "public" / "noising.png"
    png.write_bytes(b"\xff" + png.read_bytes()[1:])  # same size
    assert Store(tmp_path).entry(KEY) is not None
    store = Store(tmp_path)
    checked, damage = store.verify()
    assert checked == 1 and [(d.key, d.refs) for d in damage] == [(KEY, ["b1.2"])]
    assert "public/noising.png does not match its sha256" in str(damage[0])
    store.repair(damage[0])
    assert not (tmp_path / "store" / KEY).exists() and store.ref("b1.2") is None
    assert store.verify(every=True) == (0, [])


def test_a_ref_that_is_not_a_key_is_ignored_and_nothing_outside_the_store_is_read(tmp_path, capsys):
    cache = tmp_path / "cache"
    make_entry(Store(tmp_path / "evil"), KEY)  # a well-formed entry outside the cache folder
    (tmp_path / "evil" / "record.json").write_text(
        (tmp_path / "evil/store" / KEY / "record.json").read_text()
    )
    (cache / "refs").mkdir(parents=True)
    (cache / "refs" / "b1.2").write_text("../../evil\n")
    store = Store(cache)
    assert store.ref("b1.2") is None and store.last_entry("b1.2") is None
    assert store.entry("../../evil") is None and store.entry("../evil/store/" + KEY) is None
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["store: ref b1.2 is ignored: it holds '../../evil', not an entry key"]
    assert [str(d) for d in store.verify()[1]] == [
        "ref (b1.2): it holds '../../evil', not an entry key"
    ]


def test_links_out_of_the_cache_folder_are_not_followed(tmp_path):
    make_entry(Store(tmp_path / "elsewhere"))
    cache = tmp_path / "cache"
    (cache / "store").mkdir(parents=True)
    (cache / "refs").mkdir()
    (cache / "store" / KEY).symlink_to(tmp_path / "elsewhere/store" / KEY)
    (cache / "refs" / "b1.2").symlink_to(tmp_path / "elsewhere/refs/b1.2")
    store = Store(cache)
    assert store.entry(KEY) is None and store.ref("b1.2") is None
    assert {d.problem for d in store.verify(every=True)[1]} == {
        "its folder is a link",
        "it is a link or not a file",
    }
    make_entry(store)  # a rebuild replaces the links, not what they point to
    assert store.entry(KEY) is not None and Store(cache).ref("b1.2") == KEY
    assert (tmp_path / "elsewhere/store" / KEY / MANIFEST).is_file() and (
        tmp_path / "elsewhere/refs/b1.2"
    ).is_file()


def test_staging_leftovers_and_empty_work_folders_are_removed(tmp_path):
    store = Store(tmp_path)
    (tmp_path / "tmp" / "0123abcd.xyz" / "public").mkdir(parents=True)  # what kill -9 leaves
    (tmp_path / "tmp" / "0123abcd.xyz.old").symlink_to(tmp_path / "store")
    store.clean_staging()
    assert list((tmp_path / "tmp").iterdir()) == []
    for keep in (False, True):
        with pytest.raises(RuntimeError), store.staging(KEY, "b2.2"):
            work = store.work_dir(KEY)
            if keep:
                (work / "model_epoch_1.safetensors").write_bytes(b"resume from me")
            raise RuntimeError("interrupted")
        assert work.exists() == keep
    assert list((tmp_path / "tmp").iterdir()) == []


def test_written_files_get_the_usual_mode(tmp_path):
    path = tmp_path / "docs" / "page.md"
    write_atomic(path, "text")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_identical_weights_are_identical_bytes(tmp_path):
    """safetensors writes the metadata in hash order, which changes with every save; save_weights
    sorts it."""
    import torch

    from generator.models.train import load_model, save_model
    from generator.models.unet import UNet, UNetConfig

    torch.manual_seed(0)
    model = UNet(UNetConfig(hidden=4))
    files = [tmp_path / f"{i}.safetensors" for i in range(6)]
    for path in files:
        save_model(model, path, epoch=3, extra="x", more=[1])
    assert len({path.read_bytes() for path in files}) == 1
    assert torch.equal(load_model(files[0]).head.weight, model.head.weight)


def test_a_truncated_checkpoint_resumes_from_the_epoch_before_exactly(tmp_path, capsys, one_thread):
    import torch

    from generator.models.train import TrainConfig, load_kept, train
    from generator.models.unet import UNet, UNetConfig

    images, labels = torch.rand(32, 1, 28, 28), torch.zeros(32, dtype=torch.long)

    def loss_fn(model, x, y, g):
        return (model(x + 0.5 * torch.randn(x.shape, generator=g)) - x).pow(2).mean()

    def run(work, stop_after=None):
        torch.manual_seed(0)
        model = UNet(UNetConfig(hidden=4))
        seen = []

        def on_epoch_end(epoch, m):
            seen.append(epoch)
            if epoch == stop_after:
                raise KeyboardInterrupt

        losses = train(
            model,
            images,
            labels,
            loss_fn,
            TrainConfig(3, 16, 1e-3, lr_schedule="exponential", ema_decay=0.9),
            generator=torch.Generator().manual_seed(1),
            work_dir=work,
            device="cpu",
            on_epoch_end=on_epoch_end,
            label="b2.2",
        )
        return losses, model, seen

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    straight, model_a, _ = run(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", stop_after=2)
    os.truncate(tmp_path / "b/model_epoch_2.safetensors", 1000)
    capsys.readouterr()
    resumed, model_b, seen = run(tmp_path / "b")
    assert capsys.readouterr().err.splitlines() == [
        "b2.2: checkpoint model_epoch_2.safetensors in the work folder is damaged; "
        "resuming from epoch 1"
    ]
    assert seen == [1, 2, 3] and resumed == straight
    for (name, a), b in zip(model_a.state_dict().items(), model_b.state_dict().values()):
        assert torch.equal(a, b), name
    assert (tmp_path / "a/model_epoch_3.safetensors").read_bytes() == (
        tmp_path / "b/model_epoch_3.safetensors"
    ).read_bytes()
    assert torch.equal(
        load_kept(tmp_path / "b", 2).head.weight, load_kept(tmp_path / "a", 2).head.weight
    )


# With the built project: what a user sees.


def _entry_of(project, sid):
    return project / ".gen/store" / (project / ".gen/refs" / sid).read_text().strip()


def _states(result) -> dict[str, str]:
    return {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[2:]}


@pytest.mark.slow
def test_a_damaged_record_is_stale_and_rebuilt_and_staging_leftovers_go(project):
    _same_size(_entry_of(project, "b1.1") / "record.json", "{not json")
    (project / ".gen/tmp/0123abcd.killed/public").mkdir(parents=True)
    listed = gen(project, "list", "--profile", "smoke")
    assert _states(listed)["b1.1"] == "stale" and _states(listed)["b1.2"] == "fresh"
    assert "(b1.1) is damaged" in listed.stderr
    result = gen(project, "build", "b1.1", "--profile", "smoke")
    assert ran(result) == ["b1.1"]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "(b1.1) is damaged (record.json does not parse)" in lines[0], (
        result.stderr
    )
    assert json.loads((_entry_of(project, "b1.1") / "record.json").read_text())["id"] == "b1.1"
    assert list((project / ".gen/tmp").iterdir()) == []


@pytest.mark.slow
def test_a_truncated_figure_is_rebuilt_and_never_published(project):
    docs_png = project / "docs/assets/b1.2/noising.webp"
    good = docs_png.read_bytes()
    os.truncate(_entry_of(project, "b1.2") / "public/noising.webp", 1000)
    (_entry_of(project, "b1.2.1") / "private/model_epoch_2.safetensors").unlink()
    result = gen(project, "build", "b1.2", "b1.2.1", "--profile", "smoke")
    assert sorted(ran(result)) == ["b1.2", "b1.2.1"]
    assert (
        "noising.webp is 1000 bytes" in result.stderr
        and "model_epoch_2.safetensors is missing" in result.stderr
    )
    assert (
        docs_png.read_bytes()
        == (_entry_of(project, "b1.2") / "public/noising.webp").read_bytes()
        == good
    )


@pytest.mark.slow
def test_gen_verify_finds_a_flipped_byte_and_repairs_it(project):
    png = _entry_of(project, "b1.2") / "public/noising.webp"
    png.write_bytes(bytes([png.read_bytes()[0] ^ 1]) + png.read_bytes()[1:])
    assert (
        _states(gen(project, "list", "--profile", "smoke"))["b1.2"] == "fresh"
    )  # sizes only: missed
    found = gen(project, "verify", check=False)
    assert found.returncode == 1 and "(b1.2): public/noising.webp does not match" in found.stdout, (
        found.stdout
    )
    assert "1 damaged" in found.stdout.splitlines()[-1]
    repaired = gen(project, "verify", "--repair", check=False)
    assert "removed entry" in repaired.stdout and not png.exists()
    assert gen(project, "verify", "--all").stdout.splitlines()[-1].endswith(", 0 damaged")
    assert _states(gen(project, "list", "--profile", "smoke"))["b1.2"] == "never"  # never built


@pytest.mark.slow
def test_docs_files_follow_the_umask(project):
    shutil.rmtree(project / "docs")
    old = os.umask(0o022)
    try:
        gen(project, "render")
    finally:
        os.umask(old)
    modes = {stat.S_IMODE(p.stat().st_mode) for p in (project / "docs").rglob("*") if p.is_file()}
    assert modes == {0o644}
