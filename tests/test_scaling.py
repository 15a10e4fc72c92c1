"""Where training time goes and what makes it faster: the epoch time breakdown (data, steps, validation, checkpoint
writes, the rest), and the channels-last and mixed-precision switches, which must not change what a model predicts."""

from __future__ import annotations

import json
import time

import pytest
import torch
from ignite.engine import Engine, Events

from medtl_monai.networks import TransferClassifier
from medtl_monai.training import EpochTimeBreakdown, TrainingCheckpointer, add_time, prepare_network


class _SlowLoader:
    """Three batches, each 20 ms late."""

    def __len__(self) -> int:
        return 3

    def __iter__(self):
        for i in range(3):
            time.sleep(0.02)
            yield torch.full((2, 4), float(i))


def test_epoch_time_breakdown_separates_data_steps_validation_checkpoint_and_the_rest(tmp_path):
    net = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)

    def step(engine, batch):
        time.sleep(0.01)
        optimizer.zero_grad()
        net(batch).sum().backward()
        optimizer.step()

    trainer = Engine(step)
    evaluator = Engine(lambda engine, batch: time.sleep(0.015))
    evaluator.add_event_handler(Events.COMPLETED, lambda e: e.state.metrics.update(val_auroc=0.5 + e.state.epoch))
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: evaluator.run([0, 1, 2, 3]))  # as ValidationHandler
    TrainingCheckpointer(tmp_path / "models", net, optimizer, evaluator).attach(trainer)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: time.sleep(0.025))  # a handler nobody times
    breakdown = EpochTimeBreakdown(evaluator, tmp_path / "logs")
    breakdown.attach(trainer)
    trainer.run(_SlowLoader(), max_epochs=2)
    doc = json.loads((tmp_path / "logs" / "epoch_times.json").read_text())
    assert [e["epoch"] for e in doc["epochs"]] == [1, 2] and all(e["iterations"] == 3 for e in doc["epochs"])
    for epoch in doc["epochs"]:
        assert epoch["data_s"] >= 3 * 0.02 and epoch["step_s"] >= 3 * 0.01 and epoch["validation_s"] >= 4 * 0.015
        assert 0 < epoch["checkpoint_s"] < epoch["wall_s"] and epoch["rest_s"] >= 0.025  # the untimed handler
        parts = sum(epoch[f"{p}_s"] for p in ("data", "step", "validation", "checkpoint", "rest"))
        assert parts == pytest.approx(epoch["wall_s"], abs=1e-9)
        assert epoch["outside_steps_share"] == pytest.approx(1 - epoch["step_s"] / epoch["wall_s"])
    assert doc["totals"]["wall_s"] == pytest.approx(sum(e["wall_s"] for e in doc["epochs"]))
    assert doc["total_s"] >= doc["totals"]["wall_s"] + doc["startup_s"] and doc["final_s"] > 0  # final checkpoint
    assert sum(doc["shares"][p] for p in ("data", "step", "validation", "checkpoint", "rest")) == pytest.approx(1.0)
    resumed = Engine(step)  # the same run again for a third epoch: resumes after epoch 2, keeps epochs 1 and 2
    TrainingCheckpointer(tmp_path / "models", net, optimizer, evaluator).attach(resumed)
    EpochTimeBreakdown(evaluator, tmp_path / "logs").attach(resumed)
    resumed.add_event_handler(Events.EPOCH_COMPLETED, lambda e: evaluator.run([0]))
    resumed.run(_SlowLoader(), max_epochs=3)
    again = json.loads((tmp_path / "logs" / "epoch_times.json").read_text())
    assert [e["epoch"] for e in again["epochs"]] == [1, 2, 3] and again["epochs"][:2] == doc["epochs"]


def test_handlers_report_their_own_parts_and_a_switched_off_breakdown_attaches_nothing():
    engine = Engine(lambda e, b: add_time(e, "augmentation", 0.001))
    breakdown = EpochTimeBreakdown()
    breakdown.attach(engine)
    engine.run([0, 1], max_epochs=1)
    assert breakdown.epochs[0]["augmentation_s"] == pytest.approx(0.002) and breakdown.path is None
    off = Engine(lambda e, b: None)
    EpochTimeBreakdown(enabled="false").attach(off)
    assert not off.has_event_handler(EpochTimeBreakdown._started, Events.STARTED)
    assert sum(len(off._event_handlers[e]) for e in off._event_handlers) == 0


def _trained_predictions(device: str, **switches) -> torch.Tensor:
    """One epoch of MONAI's SupervisedTrainer on a tiny 3D network (two batches), then the test probabilities."""
    from monai.engines import SupervisedTrainer

    torch.manual_seed(0)
    net = TransferClassifier("resnet18", 3, 3, 2, cut="layer1", weights="checkpoint")
    net = prepare_network(net, device=device, channels_last=switches.get("channels_last", False))
    g = torch.Generator().manual_seed(1)
    batches = [{"image": torch.randn(2, 3, 16, 16, 8, generator=g), "label": torch.tensor([0, 1])} for _ in range(2)]
    SupervisedTrainer(device=torch.device(device), max_epochs=1, train_data_loader=batches, network=net,
                      optimizer=torch.optim.SGD(net.parameters(), lr=0.01), loss_function=torch.nn.CrossEntropyLoss(),
                      amp=switches.get("amp", False)).run()
    x = torch.randn(4, 3, 16, 16, 8, generator=g).to(device)
    with torch.no_grad(), torch.autocast(torch.device(device).type, enabled=bool(switches.get("amp")) and device != "cpu"):
        return torch.softmax(net.eval()(x).float(), 1).cpu()


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="mixed precision and cuDNN's channels-last kernels need a GPU"))])
def test_channels_last_and_amp_train_and_predict_what_the_default_does(device, quiet_random_init):
    """The bundles' ``channels_last`` and ``amp`` switches (MONAI's trainer: ``torch.autocast("cuda")`` with a grad
    scaler; on the CPU it does nothing, as the equal predictions show) change speed, not predictions: after the same
    training step the probabilities agree to float32 accuracy (channels-last) and to half precision (AMP on a GPU)."""
    default = _trained_predictions(device)
    torch.testing.assert_close(_trained_predictions(device, channels_last=True), default, rtol=0, atol=1e-4)
    amp = _trained_predictions(device, amp=True)
    torch.testing.assert_close(amp, default, rtol=0, atol=1e-6 if device == "cpu" else 2e-2)
    both = _trained_predictions(device, amp=True, channels_last=True)
    torch.testing.assert_close(both, default, rtol=0, atol=1e-4 if device == "cpu" else 2e-2)


def _predictions(channels_last: bool = False, input_too: bool = False) -> torch.Tensor:
    torch.manual_seed(0)
    net = TransferClassifier("resnet18", 2, 3, 2, cut="layer3", weights="checkpoint")
    net = prepare_network(net, device="cpu", channels_last=channels_last).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return torch.softmax(net(x.contiguous(memory_format=torch.channels_last) if input_too else x), 1)


def test_channels_last_2d_predicts_what_the_default_layout_predicts(quiet_random_init):
    """As the bundle switches it (the network only) and with the input converted too."""
    default = _predictions()
    torch.testing.assert_close(_predictions(channels_last=True), default, rtol=0, atol=1e-5)
    torch.testing.assert_close(_predictions(channels_last=True, input_too=True), default, rtol=0, atol=1e-5)


def test_the_training_loader_prefetches_in_a_thread_only_for_a_gpu():
    from monai.data import DataLoader, ThreadDataLoader

    from medtl_monai.data import loader_for_device

    data = [{"x": float(i)} for i in range(5)]
    cpu = loader_for_device(data, "cpu", batch_size=2, shuffle=False, num_workers=0)
    assert type(cpu) is DataLoader and [b["x"].tolist() for b in cpu] == [[0.0, 1.0], [2.0, 3.0], [4.0]]
    gpu = loader_for_device(data, torch.device("cuda:0"), batch_size=2, shuffle=False, num_workers=0)
    assert isinstance(gpu, ThreadDataLoader) and [b["x"].tolist() for b in gpu] == [[0.0, 1.0], [2.0, 3.0], [4.0]]
