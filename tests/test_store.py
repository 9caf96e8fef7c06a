"""The store's semantics: reuse, exact reruns, --force, records, atomicity, locking."""

import json
import threading
import time

import pytest
from conftest import gen, ran, tree_digest

from generator.chapters import all_sections

CONTRACT_FIELDS = {
    "id",
    "title",
    "params",
    "backend",
    "device",
    "seed",
    "duration_s",
    "cache_key",
    "metrics",
    "files",
}


@pytest.mark.slow
def test_second_identical_build_reruns_nothing(project):
    before = {p: p.stat().st_mtime_ns for p in (project / "docs").rglob("*") if p.is_file()}
    result = gen(project, "build", "b1", "--profile", "smoke")
    assert ran(result) == []
    assert "0 section(s) ran, 5 reused" in result.stdout
    after = {p: p.stat().st_mtime_ns for p in (project / "docs").rglob("*") if p.is_file()}
    assert after == before  # not even rewritten


@pytest.mark.slow
def test_parameter_change_reruns_exactly_its_dependents(project):
    result = gen(project, "build", "b1", "--profile", "smoke", "--set", "b1.2.1.epochs=1")
    assert ran(result) == ["b1.2.1", "b1.2.2"]
    record = json.loads((project / "docs/assets/b1.2.1/record.json").read_text())
    assert record["params"]["epochs"] == 1
    assert "--set b1.2.1.epochs=1" in record["command"]
    # Back to the old value: both entries are still in the store.
    assert ran(gen(project, "build", "b1", "--profile", "smoke")) == []
    # A change upstream reruns everything that uses it, and not its siblings.
    assert ran(gen(project, "build", "b1", "--profile", "smoke", "--set", "b1.1.hidden=4")) == [
        "b1.1",
        "b1.2.1",
        "b1.2.2",
        "b1.2.3",
    ]


@pytest.mark.slow
def test_force_recomputes_only_the_named_sections(project):
    result = gen(project, "build", "b1.1", "--profile", "smoke", "--force")
    assert ran(result) == ["b1.1"]  # same key: what uses it stays valid
    result = gen(project, "build", "b1.2.2", "--profile", "smoke", "--force")
    assert ran(result) == ["b1.2.2"]  # its needs are reused


@pytest.mark.slow
def test_same_parameters_give_the_same_images(project):
    before = tree_digest(project / "docs/assets")
    result = gen(project, "build", "b1.2", "b1.2.1", "b2.5", "--profile", "smoke", "--force")
    assert ran(result) == ["b1.2", "b1.2.1", "b1.2.2", "b1.2.3", "b2.5"]
    after = tree_digest(project / "docs/assets")
    images = [p for p in before if p.endswith((".png", ".webp", ".gif", ".npz"))]
    assert len(images) > 10 and all(before[p] == after[p] for p in images)


@pytest.mark.slow
def test_records_hold_the_contract_fields(built):
    for sid in [sid for sid in all_sections() if sid.startswith("b")]:
        record = json.loads((built / "docs/assets" / sid / "record.json").read_text())
        assert CONTRACT_FIELDS <= set(record), sid
        assert record["id"] == sid and record["profile"] == "smoke"
        assert all(isinstance(v, (int, float)) for v in record["metrics"].values())
        assert {"torch", "diffusers", "generator"} <= set(record["versions"])
        for f in record["files"]:
            assert (built / "docs" / f).is_file(), f
        assert len(record["cache_key"]) == 64
    metrics = json.loads((built / "docs/assets/b1.2.2/record.json").read_text())["metrics"]
    assert {"mse_sigma_0.5", "psnr_sigma_0.5", "psnr_noisy_sigma_0.5"} <= set(metrics)
    # Denoising must beat doing nothing at the noise level it was trained for.
    assert metrics["psnr_sigma_0.5"] > metrics["psnr_noisy_sigma_0.5"]


@pytest.mark.slow
def test_failed_section_exits_1_names_it_and_keeps_earlier_results(project, monkeypatch):
    from generator.build import build
    from generator.chapters import b_denoiser
    from generator.config import load
    from generator.errors import SectionFailed

    before = tree_digest(project / "docs", project / ".gen/store", project / ".gen/refs")

    def explode(params, ctx):
        (ctx.out / "half-written.png").write_bytes(b"not a png")
        raise RuntimeError("out of memory")

    monkeypatch.setattr(b_denoiser, "out_of_distribution", explode)
    config = load(project, "smoke", ("b1.2.2.eval_digits=100",))
    with pytest.raises(SectionFailed, match="b1.2.2.*out of memory") as failure:
        build(config, ["b1"], log=lambda *a: None)
    assert failure.value.exit_code == 1
    assert tree_digest(project / "docs", project / ".gen/store", project / ".gen/refs") == before
    assert not list((project / ".gen/tmp").iterdir())


@pytest.mark.slow
def test_a_second_build_waits_for_the_lock(project):
    from generator.store import Store

    store = Store(project / ".gen")
    result = {}
    with store.lock():
        worker = threading.Thread(
            target=lambda: result.update(r=gen(project, "build", "b1", "--profile", "smoke"))
        )
        worker.start()
        time.sleep(4)
        assert worker.is_alive()  # waiting, not failing and not building
        assert "r" not in result
    worker.join(timeout=120)
    assert "waiting for it to finish" in result["r"].stderr
    assert "0 section(s) ran" in result["r"].stdout


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ["exponential", "onecycle"])
def test_interrupted_training_resumes_exactly(tmp_path, schedule):
    import torch

    from generator.models.train import TrainConfig, load_kept, train
    from generator.models.unet import UNet, UNetConfig

    images = torch.rand(64, 1, 28, 28)
    labels = torch.zeros(64, dtype=torch.long)

    def loss_fn(model, x, y, g):
        return (model(x + 0.5 * torch.randn(x.shape, generator=g)) - x).pow(2).mean()

    def run(work, stop_after=None):
        torch.manual_seed(0)
        model = UNet(UNetConfig(hidden=4))

        def on_epoch_end(epoch, m):
            if epoch == stop_after:
                raise KeyboardInterrupt

        losses = train(
            model,
            images,
            labels,
            loss_fn,
            TrainConfig(3, 16, 1e-3, lr_schedule=schedule, ema_decay=0.9),
            generator=torch.Generator().manual_seed(1),
            work_dir=work,
            device="cpu",
            on_epoch_end=on_epoch_end,
        )
        return losses, model

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    straight, model_a = run(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", stop_after=2)
    resumed, model_b = run(tmp_path / "b")
    assert resumed == straight
    for (name, a), b in zip(model_a.state_dict().items(), model_b.state_dict().values()):
        assert torch.equal(a, b), name
    # the kept weights (the moving average) too, and they are not the trained weights
    kept_a, kept_b = load_kept(tmp_path / "a", 3), load_kept(tmp_path / "b", 3)
    for (name, a), b in zip(kept_a.state_dict().items(), kept_b.state_dict().values()):
        assert torch.equal(a, b), name
    assert not torch.equal(kept_a.head.weight, model_a.head.weight)
