"""Leaving an `accelerate` process group so that every rank exits.

Why this exists (found with py-spy on a two-node loopback run that never exited): at
interpreter exit, the DDP model's `Reducer` was the last owner of the gloo process group
(`end_training()` had dropped the others), so Python's teardown ran `~ProcessGroupGloo`
while holding the GIL. That destructor joins gloo's worker threads, and one of them was
still freeing the work of the last `gather_object`, whose tensors need the GIL to be
released: a deadlock (pytorch/pytorch#56297). It shows when a worker thread is scheduled
late, i.e. on a loaded CPU. The cure is an order: first free the DDP wrapper (its Reducer
then drops its reference while the process group is still registered), then destroy the
process group, whose own destructor releases the GIL.
"""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger(__name__)


def leave_process_group(accelerator_or_state) -> None:
    """Barrier, free what holds the process group, destroy it. Safe without distribution.

    Call it last, after dropping your own references to the prepared (DDP) model: a wrapper
    still alive here would own the process group at interpreter exit again.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    accelerator_or_state.wait_for_everyone()
    if hasattr(accelerator_or_state, "free_memory"):
        accelerator_or_state.free_memory()  # accelerate's own references to the model, optimizer, loaders
    gc.collect()
    from torch.nn.parallel import DistributedDataParallel

    alive = [o for o in gc.get_objects() if isinstance(o, DistributedDataParallel)]
    if alive:
        logger.warning("%d DDP model(s) still referenced while leaving the process group; the process may "
                       "hang at exit (see medicraft_hf.distributed).", len(alive))
    if hasattr(accelerator_or_state, "end_training"):
        accelerator_or_state.end_training()  # trackers, then destroy_process_group
    else:
        accelerator_or_state.destroy_process_group()
