"""The torch training engine behind `harness.torch` (imports torch; the core never
imports this package at start-up).

* `clouds`: the two kinds of mini-batch a network sees (dense (B, n, d) clouds, or
  torch-geometric graphs for clouds of different sizes) and the operations that work on
  both: pooling, rotation augmentation, scaling into the unit sphere.
* `sets`: a training or evaluation set on the device and the mini-batches drawn from it.
* `loop`: the training loop (early stopping, pruning reports) and batched prediction.
* `accel`: what changes on CUDA: bf16 autocast, TF32 matmuls, optional `torch.compile`.
"""
