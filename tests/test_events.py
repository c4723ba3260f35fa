"""Runtime events: typed on both ends, plain JSON on the wire."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snn.config import parse_config
from snn.core.network import NetworkSpec
from snn.core.optimizers import OPTIMIZERS, make_optimizer
from snn.runtime.engines.chaos import Chaos
from snn.runtime.events import EVENTS, Train, event_from_json
from snn.runtime.functions import FUNCTIONS, function_of
from snn.runtime.plan import Rows, Shards, WholeNetwork

SPEC = NetworkSpec(3, ((4, "relu"), (2, "softmax")), "cce")


def train(name="adam"):
    opt = make_optimizer(name)
    return Train(0.01, 0.5, 0.8, 7, (1, 2, 3, 7), opt, tuple(opt.init_state(4, float)))


EXTRA = {"step": {}, "forward": {"rows": (0, 2), "units": (2, 1)}, "loss": {"units": (2, 1)},
         "backward": {"rows": (2, 4), "units": (2, 1)}, "shard": {"columns": (3, 7)},
         "reduce": {"shards": 2, "chunk": (0, 10)}, "local": {},
         "merge": {"mode": "best", "final": True, "inputs": (("local", 0, 0), ("local", 0, 1)), "weights": (3.0, 4.0),
                   "X_val": "xv", "Y_val": "yv"},
         "trial": {"config": {"name": "t"}, "data_root": "/data"}}


@settings(max_examples=30, deadline=None)
@given(kind=st.sampled_from(sorted(EVENTS)), optimizer=st.sampled_from(sorted(OPTIMIZERS)),
       step=st.integers(0, 10**9), attempt=st.integers(0, 8))
def test_every_event_survives_json(kind, optimizer, step, attempt):
    common = {"store": "redis://127.0.0.1:1/0", "run": "ab" * 16, "ttl": 3600.0, "step": step, "attempt": attempt}
    if kind != "trial":
        common.update(net=SPEC, train=train(optimizer), X="x", Y="y", param_units=3)
    event = EVENTS[kind](**common, **EXTRA[kind])
    wire = json.loads(json.dumps(event.to_json()))
    assert wire["kind"] == kind
    assert event_from_json(wire) == event


def test_every_event_kind_has_a_function_and_its_outputs():
    for kind in EVENTS:
        assert function_of(kind).run  # trial is registered by snn.tune, imported on demand
    assert FUNCTIONS["forward"].outputs == ("Z", "A", "G")
    local = EVENTS["local"](store="memory://x", run="r", ttl=None, step=0, net=SPEC, train=train())
    assert FUNCTIONS["local"].output_names(local) == ["param", "m", "v", "t"]


def test_the_config_resolves_granularity_and_chaos_once():
    raw = {"data": {"dataset": "xor"}, "network": {"layers": [{"units": 1, "activation": "sigmoid"}]},
           "training": {"epochs": 1}}
    cfg = parse_config(raw)
    assert cfg.runtime.granularity == WholeNetwork() and cfg.runtime.chaos == Chaos()
    for text, typed in (("block:3", Rows(3)), ("neuron", Rows(1)), ("layer", Rows(0)), ("data:2", Shards(2))):
        cfg = parse_config(raw, overrides={"runtime.granularity": text, "runtime.chaos": "dup=0.25,seed=4"})
        assert cfg.runtime.granularity == typed and cfg.runtime.chaos == Chaos(dup=0.25, seed=4)
        dumped = cfg.model_dump(mode="json")["runtime"]
        assert (dumped["granularity"], dumped["chaos"]) == (text, "dup=0.25,seed=4")
        assert parse_config(json.loads(json.dumps(cfg.model_dump(mode="json")))) == cfg
    with pytest.raises(Exception, match="a granularity must be a string"):
        parse_config(raw, overrides={"runtime.granularity": 4})
