"""What a check is: a function from an :class:`AuditContext` to findings and a summary.

A check module defines ``run(context) -> (findings, summary)`` and is listed once in
:data:`catalog.audit.REGISTRY`. The context carries what checks share, computed at most
once and only when a check asks for it: the images of the dataset under audit
(:attr:`AuditContext.data`), those of all its splits (:attr:`AuditContext.whole`, what
models are fitted on) and their ink measures (``data.ink``). Both hold metadata; pixels
are streamed from the catalog in blocks sized by the memory budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from sqlalchemy.orm import Session

from catalog.audit.findings import Finding
from catalog.audit.images import DEFAULT_MEMORY, DatasetImages, chunk_for, load_images
from catalog.audit.label_model import DEFAULT_METHOD, Method

Progress = Callable[[str, int, int], None]  # (check, done, total)
Outcome = tuple[list[Finding], dict[str, Any]]  # findings, and numbers for the summary


@dataclass
class AuditContext:
    """What a check may look at.

    Attributes
    ----------
    session
        An open session (only read).
    datasets
        Every dataset the audit covers.
    dataset
        The dataset a per-dataset check looks at; None for a check of the whole catalog.
    splits
        Only these splits are audited (empty: all).
    seed
        Seed of the models' folds and initialisation.
    progress
        Called as ``progress(check, done, total)``; see :meth:`ticker`.
    shared
        One dict for the whole audit run, where a check keeps what it computed for
        one dataset and needs again for another (identify results, for leakage).
    memory
        Memory budget in bytes: sets how many images are read and worked on at a time.
    full
        Work from scratch, even where an earlier audit kept what a check could build on
        (the near-duplicate search, the label-error fit); what this run finds is kept.
    method
        The label-error scorer (:data:`catalog.audit.label_model.METHODS`).
    """

    session: Session
    datasets: tuple[str, ...]
    dataset: str | None = None
    splits: tuple[str, ...] = ()
    seed: int = 0
    progress: Progress | None = None
    shared: dict[str, Any] = field(default_factory=dict)
    memory: int = DEFAULT_MEMORY
    full: bool = False
    version: str | None = None  # only this version's images, with its frozen labels
    method: Method = DEFAULT_METHOD

    @cached_property
    def data(self) -> DatasetImages:
        """The images under audit: ``dataset``'s, of ``splits``."""
        if self.dataset is None:
            msg = "a check of the whole catalog has no dataset's images"
            raise ValueError(msg)
        return self._load(self.splits)

    @cached_property
    def whole(self) -> DatasetImages:
        """All of ``dataset``'s images, whatever ``splits`` says (models fit on all of train)."""
        if not self.splits or self.dataset is None:
            return self.data  # which raises for a check of the whole catalog
        return self._load(())

    def _load(self, splits: tuple[str, ...]) -> DatasetImages:
        assert self.dataset is not None
        data = load_images(self.session, self.dataset, splits, version=self.version)
        height, width = data.shape or (28, 28)
        data.chunk = chunk_for(self.memory, height, width)
        return data

    def ticker(self, check: str, total: int) -> Callable[[int], None] | None:
        """A ``progress(n)`` callback for ``check`` that reports ``done`` of ``total``."""
        progress = self.progress
        if progress is None:
            return None
        done = 0

        def tick(n: int) -> None:
            nonlocal done
            done += n
            progress(check, min(done, total), total)

        progress(check, 0, total)
        return tick


class Check(Protocol):
    """A check: findings about what ``context`` holds, and numbers for the summary."""

    def __call__(self, context: AuditContext, /) -> Outcome: ...
