"""The serverless runtime: training steps split into stateless function invocations.

    coordinator.py   plans each step's stages, invokes units, waits at a barrier, retries
    functions.py     handler(event) -> dict: the one entry point every engine calls
    plan.py          granularities (network, layer, neuron, block:N, data:K) and units
    keys.py          every store key, scoped by run, step, phase, layer and unit
    codec.py         arrays as .npy bytes (never pickle), decoded without copying
    stores/          memory and Redis/Valkey (embedded Valkey started on demand)
    engines/         local threads, Ray, Lithops; and the chaos layer over any of them
    ledger.py        one record per invocation, and the run's counters
    checkpoint.py    the run state on disk, for --resume and clean stops
"""
