"""Learning-rate schedules: the rate for a 0-based ``epoch``.

``inverse_time`` is the course's ``lr0 / (1 + decay_rate * floor(epoch / interval))``.
"""

from __future__ import annotations

import math


def constant(lr0, epoch, decay_rate=0.0, interval=1):
    return lr0


def inverse_time(lr0, epoch, decay_rate=1.0, interval=1):
    return lr0 / (1 + decay_rate * math.floor(epoch / interval))


def exponential(lr0, epoch, decay_rate=0.95, interval=1):
    return lr0 * decay_rate ** (epoch / interval)


def step(lr0, epoch, decay_rate=0.5, interval=10):
    return lr0 * decay_rate ** math.floor(epoch / interval)


SCHEDULES = {f.__name__: f for f in (constant, inverse_time, exponential, step)}
