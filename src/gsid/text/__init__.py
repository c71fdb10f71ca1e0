"""Text handling: normalisation, tokenisers (English and CJK), sentence encoders, fine-tuning."""
