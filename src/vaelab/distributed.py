"""Data-parallel training on torch.distributed: processes started by ``torchrun`` (gloo on CPU, nccl on CUDA),
the objective wrapped in DistributedDataParallel, which averages gradients over the processes.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE; without them vaelab runs as one process.
Each process holds the dataset and takes its rows of every global batch (``shard_bounds``); the batch order
and all noise are drawn for the global batch alike on every process (``distributions.BatchShard``), so a run
on N processes takes the same steps as one process with the same global batch, up to float rounding.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Context:
    """This process's place in the run: rank among world_size processes, local_rank on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Rank 0 logs, writes the run folder and evaluates."""
        return self.rank == 0


SINGLE = Context()


def context_from_env() -> Context:
    """The Context torchrun's variables describe (one process without them)."""
    env = os.environ
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return SINGLE
    world = int(env["WORLD_SIZE"])
    return Context(int(env["RANK"]), world, int(env.get("LOCAL_RANK", 0)), int(env.get("LOCAL_WORLD_SIZE", world)))


def start(context: Context, device: torch.device) -> bool:
    """Join the process group (gloo on CPU, nccl on CUDA), unless one process runs alone or the group exists
    already (the caller's); returns whether it was started here."""
    if not context.active or dist.is_initialized():
        return False
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return True


GLOO_DRAIN_SECONDS = 0.1


def stop(finished: bool) -> None:
    """Leave the process group. After a finished run every process first waits for the others (rank 0 writes
    the run's files last). After an error there is no wait: the others may never come.

    Then the GIL is let go for a moment: gloo's worker threads free the last collectives' tensors after the
    caller has seen them complete, and that needs the GIL; DistributedDataParallel keeps the process group (and
    so those threads) alive past ``destroy_process_group``, and a thread that asks for the GIL once the
    interpreter is finalizing is ended by CPython mid-destructor: "terminate called without an active
    exception", and the process aborts after a finished run (a core dump showed exactly this; 3 of 34 runs of the
    tests' 2-process run beside other jobs aborted so, none of 60 with this wait)."""
    if dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()
        time.sleep(GLOO_DRAIN_SECONDS)


def shard_bounds(n: int, context: Context) -> tuple[int, int]:
    """Rows start:stop of a global batch of n that this process takes: n split as evenly as can be."""
    q, r = divmod(n, context.world_size)
    start = context.rank * q + min(context.rank, r)
    return start, start + q + (context.rank < r)


def broadcast(value: Any, context: Context) -> Any:
    """Rank 0's ``value`` on every process (a picklable object)."""
    if not context.active:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_process(flag: bool, context: Context) -> bool:
    """Whether ``flag`` is true on some process (every process must call this at the same point)."""
    if not context.active:
        return flag
    t = torch.tensor([float(flag)])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def sum_over_processes(t: torch.Tensor, context: Context) -> torch.Tensor:
    """The elementwise sum of ``t`` over processes (a CPU copy on gloo)."""
    if not context.active:
        return t
    t = t.detach().clone()
    dist.all_reduce(t)
    return t


def wrap(module: nn.Module, context: Context, device: torch.device) -> nn.Module:
    """``module`` in DistributedDataParallel (which starts from rank 0's parameters), or as it is alone."""
    if not context.active:
        return module
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)
