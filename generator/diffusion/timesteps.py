"""The strided timesteps every Part A sampler walks; plain Python, so reading the parameters needs no torch."""

from __future__ import annotations


def strided_timesteps(start: int, stride: int, stop: int = 0) -> list[int]:
    """start, start − stride, …, down to stop (appended when stride does not divide start − stop), as in the course."""
    if stride <= 0 or not 0 <= stop < start:
        raise ValueError(f"need stride > 0 and 0 <= stop < start, got start={start}, stride={stride}, stop={stop}")
    ts = list(range(start, stop - 1, -stride))
    if ts[-1] != stop:
        ts.append(stop)
    return ts
