"""Configuration: typed settings loaded from YAML (:mod:`.settings`) and the one place that turns
them into objects (:mod:`.build`)."""
from .settings import (Config, ConfigError, DataConfig, OptimConfig, TrainConfig, config_from_dict, load_config,
                       to_dict, to_yaml)

__all__ = ["Config", "ConfigError", "DataConfig", "OptimConfig", "TrainConfig", "config_from_dict", "load_config",
           "to_dict", "to_yaml"]
