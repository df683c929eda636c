"""NeuroScan: train, evaluate, explain and serve a brain-MRI tumour classifier."""

import os

# TensorFlow's default CPU allocator returns large tensors to the OS after each use, so every
# training step page-faults its activations in again: on the 2-core development machine 27%
# of the training run's CPU time went to the kernel, and a fine-tuning epoch ran about 1.4x slower
# than with TensorFlow's BFC memory pool (docs/experiments.md, "A static image shape for the
# fine-tuning step"). It must be in the environment before TensorFlow starts, so it is set here,
# before any module of the package imports TensorFlow; a value already set wins.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
