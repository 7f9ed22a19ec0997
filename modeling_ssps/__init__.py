"""Use-time half of the SSPS toolkit: configuration, feature extractor and speaker encoders.

Importing the package registers the classes with the transformers Auto classes (idempotent),
and marks them for remote code, so that `save_pretrained` copies these files and writes
`auto_map`: a saved folder loads with `trust_remote_code=True` where this package is absent.
"""

from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForPreTraining
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_ssps import SSPSConfig
from .feature_extraction_ssps import SSPSFeatureExtractor
from .modeling_ssps import (
    ECAPATDNN,
    DINOHead,
    FastResNet34,
    LogMelFrontend,
    ProjectionHead,
    SSPSForPreTraining,
    SSPSModel,
    SSPSModelOutput,
    SSPSPreTrainedModel,
    SSPSPreTrainingOutput,
    SwAVPrototypes,
    count_parameters,
    rename_legacy_keys,
)
from .pipeline_ssps import SpeakerVerificationPipeline

AutoConfig.register(SSPSConfig.model_type, SSPSConfig, exist_ok=True)
AutoModel.register(SSPSConfig, SSPSModel, exist_ok=True)
AutoModelForPreTraining.register(SSPSConfig, SSPSForPreTraining, exist_ok=True)
AutoFeatureExtractor.register(SSPSConfig, SSPSFeatureExtractor, exist_ok=True)

PIPELINE_REGISTRY.register_pipeline(
    "speaker-verification", pipeline_class=SpeakerVerificationPipeline, pt_model=AutoModel, type="audio"
)

SSPSConfig.register_for_auto_class()
SSPSModel.register_for_auto_class("AutoModel")
SSPSForPreTraining.register_for_auto_class("AutoModelForPreTraining")
SSPSFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")

__all__ = [
    "DINOHead",
    "ECAPATDNN",
    "FastResNet34",
    "ProjectionHead",
    "SSPSForPreTraining",
    "SSPSPreTrainingOutput",
    "SpeakerVerificationPipeline",
    "SwAVPrototypes",
    "LogMelFrontend",
    "SSPSConfig",
    "SSPSFeatureExtractor",
    "SSPSModel",
    "SSPSModelOutput",
    "SSPSPreTrainedModel",
    "count_parameters",
    "rename_legacy_keys",
]
