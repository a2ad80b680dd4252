"""Log-bucket duration histograms: constant memory per key, percentiles within about 3%.

A duration of `us` microseconds falls in bucket `int(log(us + 1) * SCALE)`. With SCALE = 16 a
bucket spans 6.5%; a percentile is read as the mean of the values in its bucket when their sum
is kept (exact when they are all equal, as low-resolution timings often are), else as the
bucket's geometric middle: off by at most 3.2% either way, exact enough to display and compare.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

SCALE = 16.0
QUANTILES = (0.50, 0.95, 0.99)


def bucket_of(us: int) -> int:
    return int(math.log(us + 1) * SCALE) if us > 0 else 0  # negative: only in a damaged file


def bucket_value(bucket: int) -> float:
    """Microseconds represented by a bucket (its geometric middle)."""
    return math.exp((bucket + 0.5) / SCALE) - 1.0


def bucket_bounds(bucket: int) -> tuple[float, float]:
    return math.exp(bucket / SCALE) - 1.0, math.exp((bucket + 1) / SCALE) - 1.0


def merge(target: dict[int, int], source: Mapping[int, int]) -> None:
    for bucket, count in source.items():
        target[bucket] = target.get(bucket, 0) + count


def quantiles(
    histogram: Mapping[int, int],
    qs: Sequence[float] = QUANTILES,
    *,
    maximum: float | None = None,
    totals: Mapping[int, float] | None = None,
) -> list[float]:
    """Microseconds at each quantile in `qs` (0..1, ascending).

    A quantile falling in bucket b is the mean of that bucket when `totals` (sum of the values per
    bucket) is given, exact when the bucket's values are all equal, else the bucket's middle;
    clamped to `maximum` when given.
    """
    total = sum(histogram.values())
    if total == 0:
        return [0.0 for _ in qs]
    results: list[float] = []
    ordered = sorted(histogram.items())
    cumulative = 0
    index = 0
    for q in qs:
        rank = max(1, math.ceil(q * total))
        while cumulative + ordered[index][1] < rank:
            cumulative += ordered[index][1]
            index += 1
        bucket, count = ordered[index]
        if totals is not None and bucket in totals and count:
            value = totals[bucket] / count
        else:
            value = max(0.0, bucket_value(bucket))
        results.append(min(value, maximum) if maximum is not None else value)
    return results


def from_values(values: Iterable[int]) -> dict[int, int]:
    histogram: dict[int, int] = {}
    for value in values:
        bucket = bucket_of(value)
        histogram[bucket] = histogram.get(bucket, 0) + 1
    return histogram
