"""The torch training engine behind `harness.torch` (imports torch; the core never
imports this package at start-up).

* `clouds`: the two kinds of mini-batch a network sees (dense (B, n, d) clouds, or
  torch-geometric graphs for clouds of different sizes) and the operations that work on
  both: pooling, rotation augmentation, scaling into the unit sphere.
* `sets`: a training or evaluation set on the device and the mini-batches drawn from it.
* `loop`: the training loop (early stopping, pruning reports) and batched prediction.
* `batched`: K networks of one architecture trained as one model (stacked parameters
  under vmap), each member with its own data, draws, optimizer and early stopping
  (`TorchModel.fit_many`, `batch_studies`).
* `accel`: what changes on CUDA: bf16 autocast, TF32 matmuls, optional `torch.compile`
  (CUDA graphs), evaluation chunks under a memory budget.
"""
