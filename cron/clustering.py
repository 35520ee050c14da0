"""Grouping similar texts in one deterministic pass: leader clustering over TF-IDF
vectors.

Items arrive in a fixed order (ids ascending, or survivors first); each joins the
cluster whose leader (its first item) it resembles most, if the cosine similarity
reaches the threshold, else it leads a new cluster. Leaders never change, so a cluster
keeps its identity as items are added run after run, and an inverted index from terms
to leaders means an item is only compared with leaders it shares a term with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cron.text import Vector, cosine, vectorise


@dataclass
class Cluster:
    leader: int  # the key of the first item
    vector: Vector
    members: list[int] = field(default_factory=list)
    weights: list[int] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(self.weights)


class LeaderClustering:
    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.clusters: list[Cluster] = []
        self._by_term: dict[str, list[int]] = {}

    def add(self, key: int, vector: Vector, weight: int = 1) -> Cluster | None:
        """Place one item; an item with no content word joins nothing (None)."""
        if not vector:
            return None
        best: tuple[float, int] | None = None
        for index in sorted({i for t in vector for i in self._by_term.get(t, ())}):
            similarity = cosine(vector, self.clusters[index].vector)
            if similarity >= self.threshold and (
                best is None or similarity > best[0] + 1e-12
            ):
                best = (similarity, index)
        if best is None:
            cluster = Cluster(leader=key, vector=vector)
            for term in vector:
                self._by_term.setdefault(term, []).append(len(self.clusters))
            self.clusters.append(cluster)
        else:
            cluster = self.clusters[best[1]]
        cluster.members.append(key)
        cluster.weights.append(weight)
        return cluster


def duplicate_groups(
    items: Sequence[tuple[int, str]], threshold: float
) -> list[list[int]]:
    """Groups of near-identical texts among ``(key, text)`` items, each group's first
    key being the earliest item (the caller orders items by who should survive).
    Only groups of two or more are returned."""
    clustering = LeaderClustering(threshold)
    for (key, _), vector in zip(
        items, vectorise([text for _, text in items]), strict=True
    ):
        clustering.add(key, vector)
    return [c.members for c in clustering.clusters if len(c.members) > 1]
