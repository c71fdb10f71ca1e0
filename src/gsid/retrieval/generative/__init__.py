"""Generative retrieval: a model generates the semantic IDs of the products that answer a
query, under a trie of the catalogue's IDs, in one shared pipeline (pipeline.py) with a
pluggable step scorer (scorers.py):

- `gr` (GenerativeRetriever, gr.py): IDs from any builder, a query -> ID seq2seq model;
- `gsid-gr` (GSIDGenerativeRetriever, gsid_gr.py): the GSID model generates its own codes.

Both share the trie, the beam search, the expansion of IDs into items (candidates.py) and the
cosine re-ranking (cosine.py).
"""

from gsid.retrieval.generative.gr import GenerativeRetriever
from gsid.retrieval.generative.gsid_gr import GSIDGenerativeRetriever
from gsid.retrieval.generative.scorers import generate_ids

__all__ = ["GSIDGenerativeRetriever", "GenerativeRetriever", "generate_ids"]
