"""Transfer strategies train exactly what they claim: frozen weights and BatchNorm statistics stay bit-for-bit, trained
ones move, learning rates are as configured; SWFT unfreezes on schedule from the previous step's best weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from ignite.engine import Engine, Events
from ignite.metrics import Metric
from monai.engines import SupervisedEvaluator
from monai.handlers import ValidationHandler

from medtl_monai.networks import TransferClassifier, init_from_run
from medtl_monai.training import (
    STRATEGIES,
    StepwiseFineTuning,
    TrainableStagesLogger,
    TrainingCheckpointer,
    configure,
    frozen_batchnorms,
    get_strategy,
    network_overrides,
    stage_groups,
    strategy_network,
    trainable_stages,
)

RESNET_STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")
#: stages each strategy freezes on a ResNet-18 (lwft with the default frozen_stages=2)
FROZEN = {"full": (), "linear": RESNET_STAGES, "truncated": (), "transfusion": (), "lwft": ("stem", "layer1"),
          "lwft_full": ("stem", "layer1"), "swft": RESNET_STAGES[:4], "discriminative": (), "scratch": ()}


def _network(strategy: str = "truncated", cut: str | int | None = "layer3", num_classes: int = 2, seed: int = 0) -> TransferClassifier:
    torch.manual_seed(seed)
    kwargs = network_overrides(strategy, cut=cut, weights=None)
    return TransferClassifier("resnet18", spatial_dims=2, in_channels=3, num_classes=num_classes, **kwargs)


def _batch(seed: int = 0, n: int = 4, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.arange(n) % 2


def _train_steps(net: nn.Module, optimizer: torch.optim.Optimizer, steps: int = 2) -> None:
    """What MONAI's SupervisedTrainer does each iteration: network.train(), forward, backward, step."""
    for i in range(steps):
        x, y = _batch(i)
        net.train()
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()


def _snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _stage_of(key: str) -> str:
    return key.split(".")[1] if key.startswith("backbone.") else "head"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_trains_exactly_what_it_claims(strategy):
    net = _network(strategy)
    groups = configure(net, strategy, 1e-3)
    optimizer = torch.optim.Adam(groups, lr=1e-3)
    before = _snapshot(net)
    _train_steps(net, optimizer)
    after = net.state_dict()
    frozen = set(FROZEN[strategy]) & set(net.stage_names)
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    for name, p in net.named_parameters():
        stage = _stage_of(name)
        if stage in frozen:
            assert not p.requires_grad and id(p) not in in_optimizer and p not in optimizer.state, name
            assert torch.equal(after[name], before[name]), f"{strategy}: frozen {name} moved"
        else:
            assert p.requires_grad and id(p) in in_optimizer, name
            assert not torch.equal(after[name], before[name]), f"{strategy}: trainable {name} did not move"
    for name in before:  # BatchNorm buffers: frozen stages keep their statistics, trained ones update them
        if name.endswith(("running_mean", "running_var", "num_batches_tracked")):
            same = torch.equal(after[name], before[name])
            assert same == (_stage_of(name) in frozen), f"{strategy}: {name} {'unchanged' if same else 'changed'}"
    assert {s for s, on in trainable_stages(net).items() if not on} == frozen


def test_network_overrides_change_only_what_the_strategy_needs():
    base = {"cut": 11, "weights": "/w.pth"}
    assert network_overrides("truncated", **base) == {"cut": 11, "weights": "/w.pth", "slim_after": None}
    assert network_overrides("full", **base)["cut"] is None and network_overrides("linear", **base)["cut"] is None
    assert network_overrides("transfusion", **base) == {"cut": None, "weights": "/w.pth", "slim_after": "layer3"}
    assert network_overrides("scratch", **base) == {"cut": 11, "weights": None, "slim_after": None}
    for name in ("lwft", "swft", "discriminative"):
        assert network_overrides(name, **base) == {"cut": 11, "weights": "/w.pth", "slim_after": None}
    with pytest.raises(ValueError, match="choose one of"):
        network_overrides("finetune_all", **base)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_registry_entry_says_what_configure_and_the_network_do(strategy, quiet_random_init):
    """One registry entry per strategy: the network it builds, whether it freezes (what DDP must know) and whether
    SWFT drives it are all read from the entry, and agree with what configure() does to a real network."""
    entry = get_strategy(strategy)
    net = strategy_network(strategy, arch="resnet18", spatial_dims=2, in_channels=3, num_classes=2, cut="layer3")
    assert net.cut == ("layer3" if entry.network == "cut" else None)
    assert (net.slim_after is not None) == (entry.network == "slim")
    configure(net, strategy, 1e-3)
    frozen = [s for s, on in trainable_stages(net).items() if not on]
    assert bool(frozen) == entry.freezes, (strategy, frozen)
    assert entry.stepwise == (strategy == "swft")
    swft = StepwiseFineTuning(net, torch.optim.Adam(net.head.parameters()), strategy=strategy)
    assert swft.enabled == entry.stepwise


def test_learning_rates_per_group_are_as_configured():
    net = _network("lwft", cut=None)
    optimizer = torch.optim.Adam(configure(net, "lwft", 1e-3, frozen_stages=1, pretrained_lr_ratio=0.1), lr=1e-3)
    assert {g["name"]: g["lr"] for g in optimizer.param_groups} == pytest.approx(
        {"layer1": 1e-4, "layer2": 1e-4, "layer3": 1e-4, "layer4": 1e-4, "head": 1e-3})
    net = _network("discriminative", cut=None)
    rates = {g["name"]: g["lr"] for g in configure(net, "discriminative", 1.0, lr_decay=2.0)}
    assert rates == pytest.approx({"stem": 1 / 32, "layer1": 1 / 16, "layer2": 1 / 8, "layer3": 1 / 4, "layer4": 1 / 2, "head": 1.0})
    table = {"stem": 1e-5, "layer1": 2e-5, "layer2": 3e-5, "layer3": 4e-5, "layer4": 5e-5, "head": 1e-3}
    rates = {g["name"]: g["lr"] for g in configure(net, "discriminative", 1e-2, stage_lrs=table)}
    assert rates == pytest.approx(table)
    with pytest.raises(ValueError, match="no rate"):
        configure(net, "discriminative", 1e-3, stage_lrs={"layer4": 1e-4})
    with pytest.raises(ValueError, match="discriminative"):
        configure(net, "full", 1e-3, stage_lrs=table)
    with pytest.raises(ValueError, match="frozen_stages"):
        configure(net, "lwft", 1e-3, frozen_stages=9)


def test_densenet_transitions_freeze_with_their_dense_block():
    net = TransferClassifier("densenet121", 2, 3, 2, cut="denseblock2")
    assert stage_groups(net) == [("stem",), ("denseblock1", "transition1"), ("denseblock2", "final_norm")]
    groups = configure(net, "lwft", 1e-3, frozen_stages=2)
    assert [g["name"] for g in groups] == ["denseblock2+final_norm", "head"]
    assert not any(p.requires_grad for p in net.backbone.transition1.parameters())


def test_frozen_batchnorm_stays_frozen_inside_monai_supervised_trainer():
    """SupervisedTrainer calls network.train() inside each iteration; the forward pre-hook still freezes BN."""
    from monai.engines import SupervisedTrainer

    net = _network("linear")
    optimizer = torch.optim.Adam(configure(net, "linear", 1e-3), lr=1e-3)
    before = _snapshot(net)
    data = [{"image": _batch(i)[0], "label": _batch(i)[1]} for i in range(2)]
    trainer = SupervisedTrainer(device=torch.device("cpu"), max_epochs=1, train_data_loader=data, network=net,
                                optimizer=optimizer, loss_function=nn.CrossEntropyLoss())
    trainer.run()
    assert all(not m.training for m in frozen_batchnorms(net)) and len(frozen_batchnorms(net)) > 0
    after = net.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before if k.startswith("backbone."))
    assert not torch.equal(after["head.fc.weight"], before["head.fc.weight"])


class _ScriptedValidation:
    """A stand-in evaluator whose key metric at each epoch comes from a list (attached before SWFT)."""

    def __init__(self, values: list[float]) -> None:
        self.values, self.state = values, type("State", (), {"metrics": {}})()

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: self.state.metrics.update(val_auroc=self.values[e.state.epoch - 1]))


def _swft_engine(net, optimizer, validation, swft, *extra, max_epochs: int):
    """An Ignite trainer of 2 iterations per epoch with: scripted validation, [checkpointer], SWFT, logger."""

    def step(engine, batch):
        x, y = batch
        net.train()
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()

    engine = Engine(step)
    validation.attach(engine)
    for handler in extra:
        handler.attach(engine)
    swft.attach(engine)
    return engine


def test_swft_unfreezes_on_schedule_and_each_step_restarts_from_the_previous_best(tmp_path):
    net = _network("swft", cut=None)
    optimizer = torch.optim.Adam(configure(net, "swft", 1e-3), lr=1e-3)
    #            step 0 (head)  step 1 (+layer4)  step 2 (+layer3)  step 3 (+layer2)
    metrics = [0.6, 0.5, 0.7, 0.9, 0.8, 0.85, 0.5]
    validation = _ScriptedValidation(metrics)
    swft = StepwiseFineTuning(net, optimizer, evaluator=validation, step_epochs=2)
    logger = TrainableStagesLogger(net, optimizer, log_dir=tmp_path / "tb")
    engine = _swft_engine(net, optimizer, validation, swft, max_epochs=7)
    logger.attach(engine)  # after SWFT: each epoch logs the stages it trains
    snapshots, at_start = {}, {}
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: snapshots.__setitem__(e.state.epoch, _snapshot(net)))
    engine.add_event_handler(Events.EPOCH_STARTED, lambda e: at_start.__setitem__(e.state.epoch, _snapshot(net)))
    frozen_bn_before = _snapshot(net)
    engine.run([_batch(i, size=16) for i in range(2)], max_epochs=7)

    trained = {epoch: [s for s, on in stages.items() if on] for epoch, stages in logger.records.items()}
    assert trained == {1: ["head"], 2: ["head"], 3: ["layer4", "head"], 4: ["layer4", "head"],
                       5: ["layer3", "layer4", "head"], 6: ["layer3", "layer4", "head"], 7: ["layer2", "layer3", "layer4", "head"]}
    assert [g["name"] for g in optimizer.param_groups] == ["head", "layer4", "layer3", "layer2"]
    assert [(epoch, step) for epoch, step, _ in swft.history] == [(3, 1), (5, 2), (7, 3)]
    # each step starts from the best weights of the step before: epoch 1 (0.6), epoch 4 (0.9), epoch 6 (0.85)
    for start_epoch, best_epoch in ((3, 1), (5, 4), (7, 6)):
        assert all(torch.equal(at_start[start_epoch][k], snapshots[best_epoch][k]) for k in snapshots[best_epoch])
    assert not all(torch.equal(at_start[3][k], snapshots[2][k]) for k in snapshots[2])  # epoch 2 was not kept
    # stem and layer1 were never unfrozen: weights and BatchNorm statistics bit-for-bit unchanged
    after = net.state_dict()
    assert all(torch.equal(after[k], frozen_bn_before[k]) for k in after if k.startswith(("backbone.stem.", "backbone.layer1.")))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb")).Reload()
    layer4 = {e.step: e.value for e in events.Scalars("trainable/layer4")}
    assert layer4 == {1: 0.0, 2: 0.0, 3: 1.0, 4: 1.0, 5: 1.0, 6: 1.0, 7: 1.0}
    assert {e.step: e.value for e in events.Scalars("trainable/stem")} == {e: 0.0 for e in range(1, 8)}


class _ScriptedMetric(Metric):
    """An evaluator metric whose value at each validation run is the next one of a list."""

    def __init__(self, values: list[float]) -> None:
        self.values, self.runs = list(values), 0
        super().__init__()

    def reset(self) -> None:
        pass

    def update(self, output) -> None:
        pass

    def compute(self) -> float:
        self.runs += 1
        return self.values[self.runs - 1]


def test_swft_with_validation_every_second_epoch_ranks_only_validated_epochs():
    """As in the bundles: MONAI's ValidationHandler runs a SupervisedEvaluator every val_interval=2 epochs; the
    evaluator's metrics on epochs 3 and 5 are those of epochs 2 and 4, and must not rank the weights of 3 and 5."""
    net = _network("swft", cut="layer2")
    optimizer = torch.optim.Adam(configure(net, "swft", 1e-3), lr=1e-3)
    x, y = _batch(0, n=2, size=16)
    evaluator = SupervisedEvaluator(device=torch.device("cpu"), val_data_loader=[{"image": x, "label": y}],
                                    epoch_length=1, network=net,
                                    key_val_metric={"val_auroc": _ScriptedMetric([0.6, 0.5, 0.7])})
    swft = StepwiseFineTuning(net, optimizer, evaluator=evaluator, step_epochs=2)
    validation = ValidationHandler(interval=2, validator=evaluator, epoch_level=True)
    engine = _swft_engine(net, optimizer, validation, swft, max_epochs=6)
    snapshots, at_start = {}, {}
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: snapshots.__setitem__(e.state.epoch, _snapshot(net)))
    engine.add_event_handler(Events.EPOCH_STARTED, lambda e: at_start.__setitem__(e.state.epoch, _snapshot(net)))
    engine.run([_batch(1, size=16)], max_epochs=6)

    assert [(epoch, step) for epoch, step, _ in swft.history] == [(3, 1), (5, 2)]
    # step 1 (epochs 3, 4) was validated only at epoch 4 (0.5): its best is epoch 4, not the unvalidated epoch 3
    for start_epoch, best_epoch, unvalidated in ((3, 2, 1), (5, 4, 3)):
        assert all(torch.equal(at_start[start_epoch][k], snapshots[best_epoch][k]) for k in snapshots[best_epoch])
        assert not all(torch.equal(at_start[start_epoch][k], snapshots[unvalidated][k]) for k in snapshots[unvalidated])
    assert (swft.step_best, swft.step_best_epoch) == (0.7, 6) and evaluator.state.metrics["val_auroc"] == 0.7


def test_swft_custom_order_and_plateau_rule():
    net = _network("swft", cut=None)
    optimizer = torch.optim.Adam(configure(net, "swft", 1e-3), lr=1e-3)
    validation = _ScriptedValidation([0.5, 0.6, 0.6, 0.6, 0.7, 0.7])
    swft = StepwiseFineTuning(net, optimizer, evaluator=validation, step_epochs=None, patience=2,
                              order=[["layer4", "layer3"], "layer2"])
    engine = _swft_engine(net, optimizer, validation, swft, max_epochs=6)
    engine.run([_batch(0, size=16)], max_epochs=6)
    # epochs 3 and 4 do not beat 0.6 -> plateau after epoch 4; step 1 unfreezes layer3 and layer4 together
    assert swft.history == [(5, 1, ["layer3+layer4", "head"])]
    assert [g["name"] for g in optimizer.param_groups] == ["head", "layer3+layer4"]
    assert trainable_stages(net) == {"stem": False, "layer1": False, "layer2": False, "layer3": True, "layer4": True, "head": True}


def test_swft_resumes_with_the_optimizer_groups_of_the_saved_epoch(tmp_path):
    def build():
        net = _network("swft", cut=None)
        optimizer = torch.optim.Adam(configure(net, "swft", 1e-3), lr=1e-3)
        validation = _ScriptedValidation([0.6, 0.7, 0.8, 0.9, 0.95])
        swft = StepwiseFineTuning(net, optimizer, evaluator=validation, step_epochs=1, state_dir=tmp_path)
        ckpt = TrainingCheckpointer(tmp_path, net, optimizer, evaluator=validation)
        return net, optimizer, validation, swft, ckpt

    net, optimizer, validation, swft, ckpt = build()
    _swft_engine(net, optimizer, validation, swft, ckpt, max_epochs=3).run([_batch(0, size=16)], max_epochs=3)
    assert [g["name"] for g in optimizer.param_groups] == ["head", "layer4", "layer3"]
    net2, optimizer2, validation2, swft2, ckpt2 = build()  # a new process: the handler rebuilds the groups at once
    assert [g["name"] for g in optimizer2.param_groups] == ["head", "layer4", "layer3"] and swft2.step == 2
    engine = _swft_engine(net2, optimizer2, validation2, swft2, ckpt2, max_epochs=5)
    engine.run([_batch(0, size=16)], max_epochs=5)
    assert [g["name"] for g in optimizer2.param_groups] == ["head", "layer4", "layer3", "layer2", "layer1"]
    assert [(e, s) for e, s, _ in swft2.history] == [(4, 3), (5, 4)]


def test_two_step_chain_loads_the_intermediate_backbone_exactly_with_a_new_head(tmp_path):
    intermediate = _network("full", cut=None, num_classes=2, seed=1)
    optimizer = torch.optim.Adam(configure(intermediate, "full", 1e-3), lr=1e-3)
    _train_steps(intermediate, optimizer, steps=2)
    torch.save(intermediate.state_dict(), tmp_path / "model.pt")
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    for num_classes in (2, 3):  # same number of classes: the head is new all the same
        target = init_from_run(_network("swft", cut=None, num_classes=num_classes, seed=2), tmp_path / "model.pt", head="new")
        state = target.state_dict()
        assert all(torch.equal(state[k], saved[k]) for k in state if k.startswith("backbone."))
        assert state["head.fc.weight"].shape == (num_classes, 512)
        if num_classes == 2:
            assert not torch.equal(state["head.fc.weight"], saved["head.fc.weight"])
    truncated = init_from_run(_network("truncated", cut=6), tmp_path / "model.pt", head="new")  # a cut target fits too
    assert all(torch.equal(v, saved[k]) for k, v in truncated.state_dict().items() if k.startswith("backbone."))
    # "match" keeps the previous head when the classes fit (a finetune of a trained model on new labels) ...
    kept = init_from_run(_network("full", cut=None, num_classes=2, seed=3), tmp_path / "model.pt", head="match")
    assert all(torch.equal(v, saved[k]) for k, v in kept.state_dict().items())
    # ... and starts a new one when they do not
    fresh = _network("full", cut=None, num_classes=3, seed=3)
    fresh_head = fresh.head.fc.weight.detach().clone()
    assert torch.equal(init_from_run(fresh, tmp_path / "model.pt", head="match").head.fc.weight, fresh_head)
    with pytest.raises(ValueError, match="head policy"):
        init_from_run(fresh, tmp_path / "model.pt", head="keep")


def test_lwft_full_is_the_papers_lwft_full_network_bottom_stages_frozen_the_rest_at_one_rate(quiet_random_init):
    """TruncatedTL's LWFT baseline: the FULL network (the bundle's cut ignored), the bottom frozen_stages stage groups
    bit-for-bit unchanged by training, every other layer and the head moved, all at one learning rate."""
    net = strategy_network("lwft_full", arch="resnet18", spatial_dims=2, in_channels=3, num_classes=2, cut="layer2")
    assert net.cut is None and net.stage_names == RESNET_STAGES
    assert network_overrides("lwft_full", cut=11, weights="/w.pth") == {"cut": None, "weights": "/w.pth", "slim_after": None}
    groups = configure(net, "lwft_full", 1e-3, frozen_stages=2, pretrained_lr_ratio=0.1)  # the ratio is lwft's only
    assert {g["name"]: g["lr"] for g in groups} == pytest.approx({"layer2": 1e-3, "layer3": 1e-3, "layer4": 1e-3, "head": 1e-3})
    optimizer = torch.optim.Adam(groups, lr=1e-3)
    before = _snapshot(net)
    _train_steps(net, optimizer, steps=1)
    after = net.state_dict()
    for name, _ in net.named_parameters():
        moved = not torch.equal(after[name], before[name])
        assert moved == (_stage_of(name) not in ("stem", "layer1")), name
    assert {s for s, on in trainable_stages(net).items() if not on} == {"stem", "layer1"}
    entry, variant = get_strategy("lwft_full"), get_strategy("lwft")
    assert entry.description.startswith("full network;") and "one rate" in entry.description
    assert variant.description.startswith("truncated network") and "pretrained_lr_ratio" in variant.description
