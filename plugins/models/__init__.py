"""Built-in models: tree ensembles on vectors, neural networks on point clouds."""

from harness import hookimpl

from .neural import CNN1D, CNN3D, AttentionPool, E3NN, PointNet
from .trees import RandomForest, XGBoost


@hookimpl
def harness_models():
    return [RandomForest, XGBoost, PointNet, AttentionPool, E3NN, CNN1D, CNN3D]
