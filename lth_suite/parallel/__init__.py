"""Everything that trains in more than one process, in one place.

- ``units``: the launcher contract (``Launcher``) and the unit graph launchers distribute;
- ``unit_worker``: what runs one unit in a cluster's worker process (a Ray task);
- ``worker_pool`` and ``pooled``: a level's trainings side by side in worker processes of
  this machine (the ``local`` launcher's ``workers``);
- ``data_parallel`` and ``ranks``: one experiment (torchrun) or one unit (a launcher's
  ranks) trained data-parallel, rank 0 leading, the others following;
- ``torchrun``: whether torchrun started this process.

The gradient averaging inside one training step stays with the training loop
(``training.distributed``), which every rank runs.
"""
