"""Every timestep spacing the samplers walk; plain Python, so reading the parameters needs no torch.

A spacing is a strictly decreasing list of timesteps. The samplers step from
each to the next; a list may end with `CLEAN`, the clean image below t = 0
(ᾱ = 1), which is where DDPMScheduler's last step goes (its `prev_t = −1`).
"""

from __future__ import annotations

CLEAN = -1  # the clean image one step below t = 0, where ᾱ = 1; the step there adds no noise


def strided_timesteps(start: int, stride: int, stop: int = 0) -> list[int]:
    """start, start − stride, …, down to stop (appended when stride does not divide start −
    stop), as in the course."""
    if stride <= 0 or not 0 <= stop < start:
        raise ValueError(
            f"need stride > 0 and 0 <= stop < start, got start={start}, stride={stride}, "
            f"stop={stop}"
        )
    ts = list(range(start, stop - 1, -stride))
    if ts[-1] != stop:
        ts.append(stop)
    return ts


def ddpm_timesteps(T: int, stride: int = 1) -> list[int]:
    """Every `stride`-th timestep from the largest one below T down to 0, then the clean image:
    with stride 1, T − 1, …, 0 (Algorithm 2 of Ho et al. 2020); with stride 3 and T = 300, 297,
    294, …, 0, so that the last noisy step is still t = 0, which adds no noise."""
    if not 1 <= stride < T:
        raise ValueError(f"need 1 <= stride < T, got stride={stride}, T={T}")
    return list(range((T - 1) // stride * stride, -1, -stride)) + [CLEAN]


def leading_timesteps(T: int, num_inference_steps: int) -> list[int]:
    """`num_inference_steps` evenly spaced timesteps from 0 up, largest first: DDPMScheduler's
    "leading" spacing, T − T/n, …, T/n, 0 for n steps.

    n must divide T. For one that does not, DDPMScheduler takes the stride T // n and starts
    further below T − 1 than one stride, from an x_t noisier than its t says; rather than
    move the steps of the counts that divide T (which would change every result made with
    them), such counts are refused (`BackendSpec.check_steps` says so before a build).
    """
    if not 1 <= num_inference_steps <= T or T % num_inference_steps:
        raise ValueError(
            f"leading spacing needs a step count that divides T = {T}, got {num_inference_steps}"
        )
    ratio = T // num_inference_steps
    return [i * ratio for i in range(num_inference_steps)][::-1]
