"""The configuration of a network and its training: schema, files, and the seeds' format.

A configuration is JSON or YAML. Values resolve in one order: command-line
argument, then the file, then the defaults below. Every field is validated, and a
bad one gets an error naming the field, the bad value and what is allowed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import (BaseModel, ConfigDict, Discriminator, Field, PlainSerializer, PlainValidator, Tag, ValidationError,
                      ValidationInfo, WithJsonSchema, field_validator, model_validator)
from typing import Annotated, Union

from .core.activations import ACTIVATIONS
from .core.initializers import INITIALIZERS, RANDOM_MODES, check_scale, check_symmetry
from .core.layers import LAYERS
from .core.losses import LOSSES
from .core.optimizers import OPTIMIZERS
from .core.schedules import SCHEDULES
from .core.strategies import STRATEGIES
from .core.training import MAX_EPOCHS
from .documents import read_document, short
from .errors import ConfigError
from .runtime.engines import ENGINES
from .runtime.engines.chaos import Chaos, parse_chaos
from .runtime.stores import REDIS_SCHEMES
from .runtime.plan import FIXED, Granularity, parse_granularity

# The names a config may use come from the registries, so a new plug-in is allowed where it is registered.
ActivationName = Literal[tuple(ACTIVATIONS)]  # type: ignore[valid-type]


# Bounds that no real network of this library reaches, and that keep a typo from
# asking for terabytes (units: 1e9) or an endless run.
MAX_UNITS, MAX_LAYERS, MAX_EXAMPLES, MAX_KERNEL = 1 << 16, 64, 10**9, 1024
# Layer kinds without weights. A config is read before the input shape is known, so its layers
# cannot be built to ask them; a kind not named here counts as having weights, so a new kind
# is refused a symmetric init rather than let through (the core checks the built layers too).
WEIGHTLESS_LAYERS = ("maxpool2d", "avgpool2d", "flatten")


def check_output_layer(last) -> None:
    """The rule for a network's last layer, in a config and in a model file alike: dense, and a softmax of at
    least 2 units. ``ValueError`` otherwise (a schema's validator turns it into its message)."""
    kind = getattr(last, "type", "dense")  # a version-1 model file's layers are all dense
    if kind != "dense":
        raise ValueError(f"the output layer is {kind}; it must be dense (one unit per class, or 1 sigmoid unit): "
                         "end with flatten and a dense layer")
    if last.activation == "softmax" and last.units < 2:
        raise ValueError("a softmax output needs at least 2 units (one per class); "
                         "for two classes use 1 sigmoid unit or 2 softmax units")


class Strict(BaseModel):
    # strict: true is not an epoch count and "3" is not a number; no NaN or infinity anywhere.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class LayerConfig(Strict):
    """A layer entry; ``type`` picks the kind (``dense`` when absent, as in every config before types)."""

    def spec(self):
        """The core's spec of this layer."""
        return LAYERS[self.type](**self.model_dump(exclude={"type"}))


class DenseConfig(LayerConfig):
    type: Literal["dense"] = "dense"
    units: int = Field(gt=0, le=MAX_UNITS, description="neurons in the layer")
    activation: ActivationName


class Conv2DConfig(LayerConfig):
    type: Literal["conv2d"]
    filters: int = Field(gt=0, le=MAX_UNITS, description="output channels; one filter is one neuron")
    kernel: int = Field(gt=0, le=MAX_KERNEL, description="height and width of each filter")
    activation: ActivationName
    stride: int = Field(1, gt=0, le=MAX_KERNEL)
    padding: Literal["valid", "same"] | Annotated[int, Field(ge=0, le=MAX_KERNEL)] = Field(
        "valid", description="valid (none), same (odd kernel, stride 1), or pixels on each side")

    @field_validator("activation")
    @classmethod
    def _maps_have_no_softmax(cls, value: str) -> str:
        # softmax normalises over its input's first axis: a dense layer's units, but a batch of feature
        # maps' examples, which would make each prediction depend on the others in its batch.
        if value == "softmax":
            allowed = ", ".join(a for a in ACTIVATIONS if a != "softmax")
            raise ValueError(f"softmax is for a dense layer's units (one per class), not a convolution's maps; "
                             f"allowed here: {allowed}")
        return value


class PoolConfig(LayerConfig):
    size: int = Field(2, gt=0, le=MAX_KERNEL, description="height and width of each window")
    stride: int | None = Field(None, gt=0, le=MAX_KERNEL, description="default: the window size")


class MaxPoolConfig(PoolConfig):
    type: Literal["maxpool2d"]


class AvgPoolConfig(PoolConfig):
    type: Literal["avgpool2d"]


class FlattenConfig(LayerConfig):
    type: Literal["flatten"]


LAYER_CONFIGS = {c.model_fields["type"].annotation.__args__[0]: c
                 for c in (DenseConfig, Conv2DConfig, MaxPoolConfig, AvgPoolConfig, FlattenConfig)}
assert set(LAYER_CONFIGS) == set(LAYERS), "every registered layer kind has its config schema"


def _layer_kind(value) -> str:
    kind = value.get("type", "dense") if isinstance(value, dict) else getattr(value, "type", "dense")
    return kind if kind in LAYER_CONFIGS else "unknown"


class UnknownLayer(BaseModel):
    """What an entry of no known type meets: the one error saying which types there are."""

    model_config = ConfigDict(extra="allow", strict=True)
    type: Literal[tuple(LAYERS)]  # type: ignore[valid-type]


AnyLayer = Annotated[Union[tuple(Annotated[c, Tag(k)] for k, c in LAYER_CONFIGS.items())]  # noqa: UP007
                     | Annotated[UnknownLayer, Tag("unknown")], Discriminator(_layer_kind)]


class NetworkConfig(Strict):
    layers: list[AnyLayer] = Field(min_length=1, max_length=MAX_LAYERS, description="hidden layers, then the output layer")
    loss: Literal[("auto", *LOSSES)] = Field("auto", description="auto: bce after sigmoid, cce after softmax, else mse")  # type: ignore[valid-type]
    init: Literal[tuple(INITIALIZERS)] = "he"  # type: ignore[valid-type]
    init_scale: float | None = Field(None, gt=0, description="factor of the 'scaled' initializer (default 0.01)")
    bias_init: float = 0.0
    random_mode: Literal[RANDOM_MODES] = Field(  # type: ignore[valid-type]
        "generator", description="legacy: numpy.random.RandomState(seed), as the classic course notebooks"
    )
    dtype: Literal["float64", "float32"] = "float64"

    # Field validators (not a model validator) so the error names network.init and its value;
    # info.data holds the fields declared above, when they were valid.
    @field_validator("init")
    @classmethod
    def _init_breaks_symmetry(cls, value: str, info: ValidationInfo) -> str:
        if "layers" in info.data:
            check_symmetry(value, sum(l.type not in WEIGHTLESS_LAYERS for l in info.data["layers"]))
        return value

    @field_validator("init_scale")
    @classmethod
    def _scale_of_scaled(cls, value: float | None, info: ValidationInfo) -> float | None:
        if "init" in info.data:
            check_scale(info.data["init"], value)
        return value

    @model_validator(mode="after")
    def _softmax_needs_classes(self):
        check_output_layer(self.layers[-1])
        return self

    def resolved_loss(self) -> str:
        if self.loss != "auto":
            return self.loss
        return {"sigmoid": "bce", "softmax": "cce"}.get(self.layers[-1].activation, "mse")


class OptimizerConfig(Strict):
    name: Literal[tuple(OPTIMIZERS)] = "gd"  # type: ignore[valid-type]
    learning_rate: float = Field(0.0075, gt=0)
    beta1: float = Field(0.9, ge=0, lt=1, description="Adam's first moment; momentum's beta")
    beta2: float = Field(0.999, ge=0, lt=1, description="Adam's second moment; RMSProp's beta")
    epsilon: float = Field(1e-8, gt=0)

    def hyperparameters(self) -> dict[str, float]:
        return {
            "gd": {},
            "momentum": {"beta": self.beta1},
            "rmsprop": {"beta": self.beta2, "epsilon": self.epsilon},
            "adam": {"beta1": self.beta1, "beta2": self.beta2, "epsilon": self.epsilon},
        }[self.name]


class ScheduleConfig(Strict):
    name: Literal[tuple(SCHEDULES)] = "constant"  # type: ignore[valid-type]
    decay_rate: float = Field(0.0, ge=0)
    interval: int = Field(1, gt=0, description="epochs per decay step")


class TrainingConfig(Strict):
    epochs: int = Field(gt=0, le=MAX_EPOCHS)
    batch_size: int | None = Field(None, gt=0, le=MAX_EXAMPLES, description="None: full batch")
    shuffle: bool = True
    seed: int = Field(1, ge=0)
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    l2: float = Field(0.0, ge=0, description="L2 regularization lambda")
    dropout: float = Field(0.0, ge=0, lt=1, description="probability of dropping a hidden unit")
    threshold: float | None = Field(None, description="stop once an epoch's cost is below this (compared exactly)")
    patience: int | None = Field(None, gt=0, description="stop after this many epochs without a better validation "
                                 "cost; the best model is the one saved")
    strategy: Literal[STRATEGIES] = Field(  # type: ignore[valid-type]
        "sync", description="sync: data-parallel gradient descent; average/best/tree: batches in parallel, merged")
    reduce: Literal["allreduce", "scatter-reduce"] = Field(
        "allreduce", description="sync with data:K: one reducer, or K reducers of 1/K of the parameters each")
    fan_in: int = Field(2, ge=2, description="tree: models merged per node")
    telemetry_every: int | None = Field(
        None, ge=0, le=MAX_EPOCHS, description="record each neuron's weight and gradient norm, mean activation "
        "and dead or saturated share every N epochs (telemetry.safetensors); null: about 50 times a run; 0: never")


class DataConfig(Strict):
    dataset: str = Field(description="catvnoncat, mnist, fashion-mnist, cifar-10, spiral, xor, iris, csv:PATH "
                         "(csv:PATH?label=NAME for a header and a named label column) or npz:PATH")
    validation_split: float = Field(0.0, ge=0, lt=1, description="fraction of the training data held out")
    subset: int | None = Field(None, gt=0, le=MAX_EXAMPLES, description="use only the first N training examples")
    # An MLP on raw table columns of different scales learns mostly the largest one: on by default for tables.
    standardize: bool | None = Field(None, description="z-score each feature of a table with its mean and std on "
                                     "the training split, saved with the model; default (null): on for tables "
                                     "(csv, npz, iris, arrays), off for images and the generated spiral and xor")


def _parsed(parse, typed: type, what: str, optional: bool = False):
    """A validator that reads the text form once into its typed object (and lets the object through)."""
    def check(value):
        if isinstance(value, typed):
            return value
        if not (isinstance(value, str) or (optional and value is None)):
            raise ValueError(f"{what} must be a string")
        return parse(value)
    return check


# Resolved once, when the config is read: code past this point sees the objects, files see the text.
GranularityField = Annotated[Any, PlainValidator(_parsed(parse_granularity, Granularity, "a granularity")),
                             PlainSerializer(lambda g: g.name, return_type=str), WithJsonSchema({"type": "string"})]
ChaosField = Annotated[Any, PlainValidator(_parsed(parse_chaos, Chaos, "chaos", optional=True)),
                       PlainSerializer(lambda c: c.text, return_type=Optional[str]),
                       WithJsonSchema({"type": ["string", "null"]})]


class RuntimeConfig(Strict):
    granularity: GranularityField = Field(FIXED["network"], description="network, layer, neuron, block:N or data:K")
    engine: Literal[tuple(ENGINES)] = "local"  # type: ignore[valid-type]
    address: str | None = Field(None, description="Ray cluster address (engine ray)")
    store: str | None = Field(None, description="memory or redis://...; default: memory for local, else an embedded Valkey")
    workers: int | None = Field(None, gt=0, description="threads of the local engine, CPUs of a local Ray")
    chaos: ChaosField = Field(Chaos(), description="e.g. dup=0.3,drop=0.1,fail=0.05,delay=0.01")
    unit_timeout: float = Field(60.0, gt=0, description="seconds before a unit without a result is retried")
    max_retries: int = Field(8, ge=0)
    retry_backoff: float = Field(0.01, ge=0, description="seconds before the first retry of a failed unit; doubles")
    hedge_factor: float = Field(1.5, ge=0, le=100, description="send a speculative copy of a unit this many times "
                                "past its stage kind's observed p95 latency (0: never)")
    hedge_floor: float = Field(0.005, ge=0, description="seconds before a speculative copy, at least")
    key_ttl: float = Field(3600.0, gt=0, description="seconds a step's keys live in the store at most")
    checkpoint_every: int = Field(0, ge=0, description="epochs between checkpoints (0: by time only)")
    checkpoint_seconds: float = Field(30.0, ge=0, description="seconds of training between checkpoints, "
                                      "and one at the end (0: none but on a stop)")
    max_invocations: int | None = Field(None, gt=0, description="hard limit on function invocations")
    budget_usd: float | None = Field(None, gt=0, description="stop, with a checkpoint, before the modelled Lambda "
                                     "cost of the run (bundled prices, 1769 MB x86) would pass this")

    @model_validator(mode="after")
    def _address_is_rays(self):
        if self.address is not None and self.engine != "ray":
            raise ValueError(f"address names a Ray cluster; the {self.engine} engine takes none; "
                             "allowed: address with engine ray only")
        return self

    @field_validator("store")
    @classmethod
    def _known_store(cls, value: str | None) -> str | None:
        if value is not None and value != "memory" and not value.startswith(REDIS_SCHEMES):
            raise ValueError(f"unknown store; allowed: memory, {', '.join(s + '...' for s in REDIS_SCHEMES)}")
        return value


class Config(Strict):
    name: str = Field("run", description="names the run folder: letters, digits, '.', '-', '_'")
    data: DataConfig
    network: NetworkConfig
    training: TrainingConfig
    runtime: RuntimeConfig = RuntimeConfig()

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        from .names import check_name

        return check_name(value, "name")

    @model_validator(mode="after")
    def _validation_for_selection(self):
        t = self.training
        if (t.strategy == "best" or t.patience) and not self.data.validation_split:
            what = "strategy 'best'" if t.strategy == "best" else "training.patience"
            raise ValueError(f"{what} selects by validation cost; set data.validation_split > 0 "
                             "(the test set is never used for selection)")
        return self


SEED_KEYS = {"epochs", "layers", "activations", "neurons", "learning_rate", "weight", "bias",
             "lambda", "optimizer", "beta1", "beta2", "epsilon", "batch_size", "threshold"}


def from_parameters_json(raw: dict[str, Any]) -> dict[str, Any]:
    """Translate the seeds' ``parameters.json`` (cat vs non-cat) into this schema."""
    unknown = sorted(set(raw) - SEED_KEYS)
    if unknown:
        raise ConfigError(f"parameters.json: unknown keys {unknown}; allowed: {sorted(SEED_KEYS)}")
    try:
        n = int(raw["layers"])
        layers = [
            {"units": raw["neurons"][f"layer{i}"], "activation": raw["activations"][f"layer{i}"]}
            for i in range(1, n + 1)
        ]
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(
            f"parameters.json: 'layers' must be a count and 'neurons'/'activations' must name "
            f"layer1..layerN; missing or bad: {e}"
        ) from None
    weight = raw.get("weight", 0.01)
    init = {"init": weight} if isinstance(weight, str) else {"init": "scaled", "init_scale": weight}
    optimizer = {"name": raw.get("optimizer", "gd"), "learning_rate": raw.get("learning_rate", 0.0075)}
    optimizer.update({k: raw[k] for k in ("beta1", "beta2", "epsilon") if k in raw})
    training = {"epochs": raw.get("epochs"), "seed": 1, "optimizer": optimizer, "l2": raw.get("lambda", 0.0)}
    training.update({k: raw[k] for k in ("batch_size", "threshold") if k in raw})
    return {
        "name": "parameters",
        "data": {"dataset": "catvnoncat"},
        "network": {"layers": layers, **init, "bias_init": raw.get("bias", 0.0),
                    "random_mode": "legacy", "dtype": "float64"},
        "training": training,
    }


def set_path(raw: dict, dotted: str, value) -> None:
    """Set ``raw['a']['b'] = value`` for ``dotted='a.b'``, creating sections as needed."""
    *parents, leaf = dotted.split(".")
    for key in parents:
        raw = raw.setdefault(key, {})
        if not isinstance(raw, dict):
            raise ConfigError(f"{'.'.join(parents)}: must be a mapping of fields to set {dotted}, got {short(raw)}")
    raw[leaf] = value


def parse_config(raw: Any, source: str = "config", overrides: dict[str, Any] | None = None) -> Config:
    """Validate a dict (either format); ``overrides`` are dotted paths from the command line."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: must be a mapping of fields, got {type(raw).__name__}")
    if "neurons" in raw and "activations" in raw:
        raw = from_parameters_json(raw)
    try:
        raw = json.loads(json.dumps(raw))  # a deep copy that overrides cannot leak out of
    except (TypeError, ValueError, RecursionError) as e:
        raise ConfigError(f"{source}: only plain JSON values are allowed ({e})") from None
    for path, value in (overrides or {}).items():
        if value is not None:
            set_path(raw, path, value)
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(describe(e, source)) from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    return parse_config(read_document(path), str(path), overrides)


def describe(error: ValidationError, source: str) -> str:
    """One line: each problem's field, bad value, and what is allowed."""
    lines = [f"{source}: {error.error_count()} invalid field(s):"]
    for e in error.errors():
        loc = _untagged(e["loc"])
        field = ".".join(str(p) for p in loc) or "(top level)"
        if e["type"] == "extra_forbidden":
            allowed = ", ".join(_fields_at(e["loc"][:-1]))
            lines.append(f"{field}: unknown field; allowed here: {allowed}")
        elif e["type"] == "missing":
            lines.append(f"{field}: required, but missing")
        elif not e["loc"]:
            lines.append(f"{e['msg'].removeprefix('Value error, ')}")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"{field}: got {short(e['input'])}; {msg[0].lower()}{msg[1:]}")
    return lines[0] + " " + "; ".join(lines[1:])


def _untagged(loc) -> tuple:
    """A location without the union tags pydantic adds (``layers.0.conv2d.kernel`` is ``layers.0.kernel``)."""
    return tuple(p for i, p in enumerate(loc) if not (i and isinstance(loc[i - 1], int) and p in (*LAYER_CONFIGS, "unknown")))


def _fields_at(loc) -> list[str]:
    model: Any = Config
    for i, part in enumerate(loc):
        if isinstance(part, int):
            continue
        if i and isinstance(loc[i - 1], int) and part in LAYER_CONFIGS:
            model = LAYER_CONFIGS[part]
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = getattr(field.annotation, "__args__", (field.annotation,))[0]
    return list(getattr(model, "model_fields", {}))
