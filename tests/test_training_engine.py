"""Training engine pieces: class weights, stopping on a low learning rate, atomic files, reading checkpoints, the
handlers each process of a distributed run keeps, and option switches as the command line delivers them."""

from __future__ import annotations

import json

import pytest
import torch
from ignite.engine import Engine, Events
from monai.handlers import StatsHandler

from medtl_monai.networks import TransferClassifier, init_from_run, read_checkpoint, read_state_dict, unwrap
from medtl_monai.training import (
    ProgressBarHandler,
    StopOnLowLR,
    TrainableStagesLogger,
    TrainingCheckpointer,
    atomic_torch_save,
    atomic_write_text,
    class_weights,
    handlers_for_this_rank,
)
from medtl_monai.utils import as_bool, parse_value


def test_class_weights_are_inverse_frequency():
    items = [{"label": 0}] * 6 + [{"label": 1}] * 2
    assert torch.allclose(class_weights(items, 2), torch.tensor([8 / 12, 8 / 4]))
    with pytest.raises(ValueError, match="classes \\[1\\] have no training case"):
        class_weights([{"label": 0}], 2)
    with pytest.raises(ValueError, match="outside 0..1"):
        class_weights([{"label": 2}], 2)


def test_stop_on_low_lr_terminates():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1e-3)
    engine = Engine(lambda e, b: optimizer.param_groups[0].update(lr=optimizer.param_groups[0]["lr"] * 0.1))
    StopOnLowLR(optimizer, min_lr=1e-6).attach(engine)
    engine.run([0], max_epochs=50)
    assert engine.state.epoch == 4  # 1e-4, 1e-5, 1e-6, 1e-7 < 1e-6


def test_atomic_writes_leave_no_partial_file(tmp_path):
    path = atomic_torch_save({"a": torch.ones(3)}, tmp_path / "x.pt")
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(3))
    assert atomic_write_text("{}\n", tmp_path / "card.json").read_text() == "{}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.json", "x.pt"]


def test_one_reader_for_state_dicts_training_checkpoints_and_ddp_prefixes(tmp_path):
    net = TransferClassifier("resnet18", 2, 3, 2, cut="layer1", weights="checkpoint")
    state = net.state_dict()
    torch.save(state, tmp_path / "bare.pt")
    torch.save({"network": state, "epoch": 3}, tmp_path / "last.pt")
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "ddp.pt")
    for name in ("bare.pt", "last.pt", "ddp.pt"):
        read = read_state_dict(tmp_path / name)
        assert read.keys() == state.keys() and all(torch.equal(read[k], state[k]) for k in state), name
    assert read_checkpoint(tmp_path / "last.pt")["epoch"] == 3
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt' could not be read as a PyTorch state dict"):
        read_state_dict(tmp_path / "junk.pt")
    with pytest.raises(ValueError, match="absent.pt' does not exist"):
        read_checkpoint(tmp_path / "absent.pt")
    wrapper = torch.nn.DataParallel(net)
    assert unwrap(wrapper) is net and unwrap(net) is net


def test_a_previous_run_fills_the_backbone_and_a_head_only_when_it_fits(tmp_path):
    torch.manual_seed(0)
    source = TransferClassifier("resnet18", 2, 3, 5, cut="layer3")
    torch.save(source.state_dict(), tmp_path / "model.pt")
    target = TransferClassifier("resnet18", 2, 3, 2, cut="layer2")
    head_before = target.head.fc.weight.clone()
    init_from_run(target, tmp_path / "model.pt")  # "match": 5 classes do not fit 2, the head stays new
    for key, value in target.backbone.state_dict().items():
        assert torch.equal(value, source.backbone.state_dict()[key]), key
    assert torch.equal(target.head.fc.weight, head_before)
    deeper = TransferClassifier("resnet18", 2, 3, 2, cut="layer4")
    with pytest.raises(ValueError, match="backbone keys missing.*layer4"):
        init_from_run(deeper, tmp_path / "model.pt")


def test_other_ranks_drop_only_the_logging_handlers(monkeypatch):
    net = TransferClassifier("resnet18", 2, 3, 2, cut="layer1", weights="checkpoint")
    stats, bar, logger = StatsHandler(), ProgressBarHandler(enabled=False), TrainableStagesLogger(net)
    stop = StopOnLowLR(torch.optim.SGD(net.parameters(), lr=0.1))
    handlers = [stats, stop, bar, logger]
    assert handlers_for_this_rank(handlers) == handlers  # one process: everything
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
    assert handlers_for_this_rank(handlers) == [stop]


@pytest.mark.parametrize("text, value", [("false", False), ("False", False), ("0", False), ("no", False),
                                         ("true", True), ("True", True), ("1", True), ("on", True)])
def test_switches_read_command_line_words(text, value):
    assert as_bool(text) is value
    assert ProgressBarHandler(enabled=text).enabled is value
    net = TransferClassifier("resnet18", 2, 3, 2, cut="layer1", weights="checkpoint")
    assert TrainableStagesLogger(net, enabled=text).enabled is value


def test_switch_words_that_mean_nothing_are_errors():
    with pytest.raises(ValueError, match="progress_bar='maybe' is not a switch"):
        ProgressBarHandler(enabled="maybe")


@pytest.mark.parametrize("text, value", [("false", False), ("null", None), ("[32,32,16]", [32, 32, 16]), ("3", 3),
                                         ("1e-3", 1e-3), ("False", False), ("(1, 2)", (1, 2)), ("layer3", "layer3"),
                                         ("/data/x.json", "/data/x.json")])
def test_command_line_values_parse_as_json_then_python_then_text(text, value):
    assert parse_value(text) == value


def _checkpointed_training(ckpt_dir, aurocs: dict[int, float], max_epochs: int, last_every: int, stop_after=None):
    """A tiny training whose validation AUROC of epoch e is ``aurocs[e]``; ``stop_after``: die after that epoch's
    checkpoint handler, as a kill would. Returns the checkpointer and the epochs whose last state was on disk."""
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    trainer = Engine(lambda e, b: (optimizer.zero_grad(), net(torch.ones(1, 3)).sum().backward(), optimizer.step()))
    evaluator = Engine(lambda e, b: None)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: evaluator.state.metrics.update(val_auroc=aurocs[e.state.epoch]))
    checkpointer = TrainingCheckpointer(ckpt_dir, net, optimizer, evaluator, config_hash="abc", last_every=last_every)
    checkpointer.attach(trainer)
    on_disk = []

    def after(engine):
        last = ckpt_dir / "checkpoint_last.pt"
        on_disk.append(torch.load(last, weights_only=True)["epoch"] if last.is_file() else None)
        if engine.state.epoch == stop_after:
            raise KeyboardInterrupt  # the process dies here: no COMPLETED, no final files

    trainer.add_event_handler(Events.EPOCH_COMPLETED, after)
    try:
        trainer.run([0], max_epochs=max_epochs)
    except KeyboardInterrupt:
        pass
    return checkpointer, on_disk


def test_the_last_state_is_written_every_n_epochs_and_when_training_ends(tmp_path):
    checkpointer, on_disk = _checkpointed_training(tmp_path, {1: 0.5, 2: 0.6, 3: 0.55, 4: 0.7, 5: 0.65}, 5, last_every=2)
    assert on_disk == [None, 2, 2, 4, 4]
    assert torch.load(tmp_path / "checkpoint_last.pt", weights_only=True)["epoch"] == 5  # the end of training
    assert (checkpointer.best_metric, checkpointer.best_epoch) == (0.7, 4)
    with pytest.raises(ValueError, match="last_every=0"):
        TrainingCheckpointer(tmp_path, torch.nn.Linear(1, 1), None, last_every=0)


def test_a_resumed_run_keeps_the_best_model_written_after_its_last_state(tmp_path):
    """Killed after epoch 3, whose model was the best so far but whose last state was not written (every 2 epochs):
    the run resumes from epoch 2 and retrains epoch 3; the best model on disk stays the best, and is replaced only by
    a better epoch."""
    _, on_disk = _checkpointed_training(tmp_path, {1: 0.5, 2: 0.6, 3: 0.9}, 4, last_every=2, stop_after=3)
    assert on_disk == [None, 2, 2]
    best = (tmp_path / "model.pt").read_bytes()
    (tmp_path / ".checkpoint_last.pt.tmp999").write_bytes(b"a writer killed mid-write")
    checkpointer, on_disk = _checkpointed_training(tmp_path, {3: 0.8, 4: 0.85}, 4, last_every=2)
    assert not list(tmp_path.glob(".*tmp*"))  # what a killed writer left is cleared on resume
    assert (checkpointer.best_metric, checkpointer.best_epoch) == (0.9, 3) and on_disk == [2, 4]
    assert (tmp_path / "model.pt").read_bytes() == best  # 0.8 and 0.85 do not beat the kept 0.9
    assert json.loads((tmp_path / "metrics.json").read_text())["best_epoch"] == 3
    checkpointer, _ = _checkpointed_training(tmp_path, {5: 0.95}, 5, last_every=2)
    assert (checkpointer.best_metric, checkpointer.best_epoch) == (0.95, 5) and (tmp_path / "model.pt").read_bytes() != best
