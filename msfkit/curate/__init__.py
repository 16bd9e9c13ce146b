"""Curating a collection from its embeddings: `outliers` (images that do not belong), `label_issues`
(labels the neighbourhood votes against), `select` (subsets that cover the collection); `neighbours`
holds what they share (an index or a store opened, each image's k nearest others streamed)."""

from msfkit.curate.label_issues import label_issues
from msfkit.curate.neighbours import neighbours_of
from msfkit.curate.outliers import outliers
from msfkit.curate.select import STRATEGIES, Selection, select

__all__ = ["STRATEGIES", "Selection", "label_issues", "neighbours_of", "outliers", "select"]
