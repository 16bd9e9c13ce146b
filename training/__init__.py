"""How an encoder is MADE: MSF pre-training (Koohpayegani et al., ICCV 2021; see docs/method.md).

    from msfkit.training import load_config, train
    model_dir = train(load_config("demo"))          # Fashion-MNIST, a few minutes on a CPU

One concept per module: `config` (TrainConfig, presets), `augment` (weak/strong views, PIL),
`views` (the same views, batched on the device), `data` (folders and named datasets),
`bad_files` (unreadable images skipped and recorded), `batches` (the seeded order, the loader),
`bank` (memory bank), `loss`, `ema`, `msf` (the model and its step),
`run` (a run's objects, built by `start_run`), `loop` (the epochs and `train_one_epoch`),
`meters` (training minutes, images/s), `schedules` (lr, EMA),
`progress` (the bar, start and stop lines), `monitor` (metrics.csv, TensorBoard, k-NN),
`checkpoint`, `distributed` (DDP), `export` (checkpoints and runs -> model folders).
Names load on first use.
"""

import importlib

_EXPORTS = {
    "TrainConfig": "config",
    "load_config": "config",
    "PRESETS": "config",
    "MSF": "msf",
    "MemoryBank": "bank",
    "msf_loss": "loss",
    "train": "loop",
    "export_checkpoint": "export",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"msfkit.training.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'msfkit.training' has no attribute {name!r}")
