"""Every timestep spacing the samplers walk; plain Python, so reading the parameters needs no torch.

A spacing is a strictly decreasing list of timesteps. The samplers step from
each to the next; a list may end with `CLEAN`, the clean image below t = 0
(ᾱ = 1), which is where DDPMScheduler's last step goes (its `prev_t = −1`).
"""

from __future__ import annotations

CLEAN = -1  # the clean image one step below t = 0, where ᾱ = 1; the step there adds no noise


def strided_timesteps(start: int, stride: int, stop: int = 0) -> list[int]:
    """start, start − stride, …, down to stop (appended when stride does not divide start − stop), as in the course."""
    if stride <= 0 or not 0 <= stop < start:
        raise ValueError(
            f"need stride > 0 and 0 <= stop < start, got start={start}, stride={stride}, stop={stop}"
        )
    ts = list(range(start, stop - 1, -stride))
    if ts[-1] != stop:
        ts.append(stop)
    return ts


def ddpm_timesteps(T: int) -> list[int]:
    """T − 1, T − 2, …, 0, then the clean image: Algorithm 2 of Ho et al. 2020, a strided schedule with stride 1."""
    return strided_timesteps(T - 1, 1) + [CLEAN]


def leading_timesteps(T: int, num_inference_steps: int) -> list[int]:
    """`num_inference_steps` evenly spaced timesteps from 0 up, largest first: DDPMScheduler's "leading" spacing."""
    ratio = T // num_inference_steps
    return [i * ratio for i in range(num_inference_steps)][::-1]
