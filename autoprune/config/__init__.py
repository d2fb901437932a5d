"""Typed configuration: pydantic models of a pipeline and a search space, loaded from YAML with the
file and line of every key, so each error is one line ``file:line: key.path: message``."""

from __future__ import annotations

from ._data import (
    FASHION_MNIST_DIR,
    DataConfig,
    DigitsData,
    FactoryData,
    FashionMnistData,
    ImageFolderData,
    NpzData,
)
from ._engine import CompressionConfig, DenseTraining, FinetuneConfig, LatencyConfig, TrainingRecipe
from ._loader import LoadedPipeline, SourceMap, load_pipeline, read_yaml
from ._model import (
    CNNModel,
    FactoryModel,
    LeNet5Model,
    MLPModel,
    MobileNetV2Model,
    ModelConfig,
    ResNetModel,
    VGGModel,
)
from ._pipeline import (
    ChampionConfig,
    Constraints,
    FinalizeConfig,
    PipelineConfig,
    ScheduleConfig,
    ScheduleResources,
    TrackingConfig,
)
from ._search import AshaSettings, OneShotConfig, RaySettings, SearchConfig
from ._space import CompressionSpace, FinetuneSpace, Param, PruningSpace, RatioOverride, RatioRange, SpaceConfig

__all__ = [
    "FASHION_MNIST_DIR",
    "AshaSettings",
    "CNNModel",
    "ChampionConfig",
    "CompressionConfig",
    "CompressionSpace",
    "Constraints",
    "DataConfig",
    "DenseTraining",
    "DigitsData",
    "FactoryData",
    "FactoryModel",
    "FashionMnistData",
    "FinalizeConfig",
    "FinetuneConfig",
    "FinetuneSpace",
    "ImageFolderData",
    "LatencyConfig",
    "LeNet5Model",
    "LoadedPipeline",
    "MLPModel",
    "MobileNetV2Model",
    "ModelConfig",
    "NpzData",
    "OneShotConfig",
    "Param",
    "PipelineConfig",
    "PruningSpace",
    "RatioOverride",
    "RatioRange",
    "RaySettings",
    "ResNetModel",
    "ScheduleConfig",
    "ScheduleResources",
    "SearchConfig",
    "SourceMap",
    "SpaceConfig",
    "TrackingConfig",
    "TrainingRecipe",
    "VGGModel",
    "load_pipeline",
    "read_yaml",
]
