"""Evaluating an encoder with MSF's protocols (docs/method.md): `knn` + `knn_search` (k-NN, msf and
dino), `linear` (msf and fast presets), `labels`, `features` (the one feature path), `inputs`
(datasets, folders, stores), `run` (the protocols), `report` (tables, cards, plots), `api`
(`msfkit.evaluate`)."""
