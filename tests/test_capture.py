"""FeatureRecorder and resolve_layers on toy modules: paths, wildcards, inputs and outputs,
modules called several times, tuple outputs, hook removal and the early stop."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from kd_det.capture import FeatureRecorder, StopForward, resolve_layers


class Pair(nn.Module):
    """Returns a tuple of two maps: ``(x + 1, 2 x)``."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x + 1, 2 * x


class Net(nn.Module):
    """``stem`` -> ``blocks.0`` -> ``blocks.1`` -> ``split`` (tuple) -> ``head`` applied to
    both elements (a shared head, as a dense detector's over FPN levels) -> ``tail``."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(3, 4)
        self.blocks = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
        self.split = Pair()
        self.head = nn.Linear(4, 2)
        self.tail = nn.Linear(2, 2)
        self.ran: list[str] = []
        for name, module in self.named_children():
            module.register_forward_hook(lambda *_, name=name: self.ran.append(name))

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.split(self.blocks(self.stem(x)))
        return self.tail(self.head(a) + self.head(b))


@pytest.fixture
def net() -> Net:
    torch.manual_seed(0)
    return Net()


def test_resolve_exact_paths_and_wildcards(net: Net) -> None:
    assert resolve_layers(net, "stem", "student") == ["stem"]
    # '*' is one path component: the two blocks, not the Sequential itself
    assert resolve_layers(net, "blocks.*", "student") == ["blocks.0", "blocks.1"]
    assert resolve_layers(net, ["head", "blocks.*", "head"], "student") == [
        "head",
        "blocks.0",
        "blocks.1",
    ]
    with pytest.raises(ValueError, match=r"student layer 'block.\*' does not exist in Net; "):
        resolve_layers(net, "block.*", "student")
    with pytest.raises(ValueError, match=r"teacher layer 'stme'.*closest valid paths: \['stem'\]"):
        resolve_layers(net, "stme", "teacher")
    with pytest.raises(ValueError, match="no student layers given"):
        resolve_layers(net, [], "student")


def test_records_outputs_and_inputs_exactly(net: Net) -> None:
    x = torch.randn(5, 3)
    recorder = FeatureRecorder(net, [("blocks.0", "output"), ("blocks.1", "input")])
    with recorder.recording() as records:
        net(x)
    out0 = records[("blocks.0", "output")]
    in1 = records[("blocks.1", "input")]
    expected = net.blocks[0](net.stem(x))
    assert len(out0) == 1 and torch.equal(out0[0], expected)
    # the input of blocks.1 is the output of blocks.0: the same tensor
    assert len(in1) == 1 and in1[0] is out0[0]
    assert recorder.labels([("blocks.0", "output"), ("blocks.1", "input")]) == [
        "blocks.0",
        "blocks.1(input)",
    ]


def test_several_calls_and_tuple_outputs_give_one_layer_each(net: Net) -> None:
    x = torch.randn(5, 3)
    targets = [("head", "output"), ("split", "output")]
    recorder = FeatureRecorder(net, targets)
    with recorder.recording():
        net(x)
    hidden = net.blocks(net.stem(x))
    a, b = hidden + 1, 2 * hidden
    head, split = recorder.layers([targets[0]]), recorder.layers([targets[1]])
    assert len(head) == 2 and len(split) == 2
    torch.testing.assert_close(head[0], net.head(a))
    torch.testing.assert_close(head[1], net.head(b))
    torch.testing.assert_close(split[0], a)
    torch.testing.assert_close(split[1], b)
    assert recorder.calls == {targets[0]: 2, targets[1]: 1}
    assert recorder.labels(targets) == ["head[0]", "head[1]", "split[0]", "split[1]"]
    # a new recording starts empty
    with recorder.recording():
        pass
    with pytest.raises(RuntimeError, match="did not run in this forward pass"):
        recorder.layers(targets)


def test_hooks_are_idle_outside_recording_and_removed(net: Net) -> None:
    recorder = FeatureRecorder(net, [("stem", "output")])
    net(torch.randn(2, 3))
    assert recorder.records == {}
    hooks_before = len(net.stem._forward_hooks)
    recorder.remove()
    assert len(net.stem._forward_hooks) == hooks_before - 1
    with recorder.recording() as records:
        net(torch.randn(2, 3))
    assert records == {}

    with FeatureRecorder(net, [("stem", "output"), ("tail", "input")]) as rec:
        assert len(net.stem._forward_hooks) == hooks_before
        assert len(net.tail._forward_hooks) == hooks_before
        with rec.recording() as records:
            net(torch.randn(2, 3))
        assert set(records) == {("stem", "output"), ("tail", "input")}
    assert len(net.stem._forward_hooks) == hooks_before - 1
    assert len(net.tail._forward_hooks) == hooks_before - 1


def test_bad_targets_are_refused(net: Net) -> None:
    with pytest.raises(ValueError, match="capture must be 'output' or 'input', got 'grad'"):
        FeatureRecorder(net, [("stem", "grad")])
    with pytest.raises(ValueError, match=r"\['stme'\] are not module paths of Net"):
        FeatureRecorder(net, [("stme", "output")])


class Dict(nn.Module):
    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {"x": x}


def test_non_tensor_outputs_name_the_layer() -> None:
    model = nn.Sequential(nn.Linear(3, 3), Dict())
    recorder = FeatureRecorder(model, [("1", "output")])
    message = r"layer '1' produced dict; only a tensor or a tuple"
    with pytest.raises(ValueError, match=message), recorder.recording():
        model(torch.randn(2, 3))


def test_early_stop_after_the_last_needed_layer(net: Net) -> None:
    # the second head call is the last needed event: tail never runs after it
    recorder = FeatureRecorder(net, [("blocks.1", "output"), ("head", "output")])
    x = torch.randn(5, 3)
    with pytest.raises(RuntimeError, match="nothing was recorded yet"):
        recorder.set_stop_after_last()
    with recorder.recording():
        net(x)
    recorder.set_stop_after_last()
    assert recorder.stop_after == (("head", "output"), 2)

    # stopping after a deeper event: record only blocks.1, then stop there
    shallow = FeatureRecorder(net, [("blocks.1", "output")])
    with shallow.recording():
        net(x)
    shallow.set_stop_after_last()
    net.ran.clear()
    with shallow.recording(stop=True) as records:
        net(x)
    # blocks.1 stopped the pass inside `blocks`, before the hook of `blocks` itself ran
    assert net.ran == ["stem"]
    assert len(records[("blocks.1", "output")]) == 1

    # a recording without stop runs the whole model
    net.ran.clear()
    with shallow.recording():
        out = net(x)
    assert net.ran == ["stem", "blocks", "split", "head", "head", "tail"]
    assert out.shape == (5, 2)

    # stop=True on the two-target recorder ends after the second head call, before tail
    net.ran.clear()
    with recorder.recording(stop=True) as records:
        net(x)
    assert net.ran == ["stem", "blocks", "split", "head", "head"]  # no tail
    assert len(records[("head", "output")]) == 2


def test_stop_forward_outside_a_stopping_recording_propagates(net: Net) -> None:
    def raise_stop(*_: object) -> None:
        raise StopForward

    handle = net.stem.register_forward_hook(raise_stop)
    recorder = FeatureRecorder(net, [("stem", "output")])
    with pytest.raises(StopForward), recorder.recording():
        net(torch.randn(2, 3))
    handle.remove()
