"""The lexical route of generative retrieval: span targets, the query -> spans model, DPO."""

from gsid.models.lexical.dpo import dpo_loss, shared_prefix_masks
from gsid.models.lexical.span_model import SpanModel, SpanModelConfig
from gsid.models.lexical.targets import RULES, TitleSpans, multi_span_rule, seal_rule

__all__ = [
    "RULES",
    "SpanModel",
    "SpanModelConfig",
    "TitleSpans",
    "dpo_loss",
    "multi_span_rule",
    "seal_rule",
    "shared_prefix_masks",
]
