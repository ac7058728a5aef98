"""The decision log replayed against the state stored beside it.

``image_state`` and ``image_tags`` hold what the append-only ``decisions`` log adds up
to (:mod:`catalog.curation.decisions`); every consumer reads the current label from
them. This check replays the log from the start (:func:`catalog.curation.log.replay`)
and compares each decided image's state with the stored one
(:func:`catalog.curation.log.stored_state`), then checks the place and source label
that ``image_state`` repeats from ``images``. ``mnist-catalog`` never writes one
without the other; a difference means someone edited the tables by hand, or a bug.
"""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from catalog.curation.decisions import State
from catalog.curation.log import replay, stored_state
from catalog.db.models.decisions import Decision, ImageState
from catalog.db.models.images import Image
from catalog.integrity.report import Found, Progress, dataset_names, image_name


def run(session: Session, found: Found, progress: Progress | None) -> int:
    """Check every decided image's state; returns how many decisions were replayed."""
    names = dataset_names(session)
    replayed = replay(session)
    stored = stored_state(session)
    for image in sorted(replayed.keys() | stored.keys()):
        logged, kept = replayed.get(image), stored.get(image)
        state = logged or kept
        assert state is not None
        name = image_name(names, *state.place)
        if kept is None:
            found.add("decisions", name, f"has decisions (the latest #{state.decision_id}) "
                      "but no image_state row")  # fmt: skip
        elif logged is None:
            found.add("decisions", name, "has an image_state row but no decision in the log")
        else:
            for difference in _differences(kept, logged):
                found.add("decisions", name, difference)
    _check_copies(session, names, found)
    return int(session.scalar(select(func.count()).select_from(Decision)) or 0)


def _label(label: int | None) -> str:
    return "the source's label" if label is None else f"label {label}"


def _differences(kept: State, logged: State) -> list[str]:
    """What the stored state says that the log does not."""
    said = []
    if kept.label != logged.label:
        said.append(f"image_state says {_label(kept.label)} where the decision log gives "
                    f"{_label(logged.label)}")  # fmt: skip
    if kept.excluded != logged.excluded:
        word = {True: "excluded", False: "included"}
        said.append(f"image_state says {word[kept.excluded]} where the decision log says "
                    f"{word[logged.excluded]}")  # fmt: skip
    if kept.decision_id != logged.decision_id:
        said.append(f"image_state names decision #{kept.decision_id} as the latest where the "
                    f"decision log has #{logged.decision_id}")  # fmt: skip
    if kept.tags != logged.tags:
        said.append(f"image_tags say {', '.join(sorted(kept.tags)) or 'no tags'} where the "
                    f"decision log gives {', '.join(sorted(logged.tags)) or 'none'}")  # fmt: skip
    return said


def _check_copies(session: Session, names: dict[int, str], found: Found) -> None:
    """``image_state`` repeats each image's dataset, split, index and source label."""
    query = (
        select(Image.dataset_id, Image.split, Image.index, Image.label, ImageState.dataset_id,
               ImageState.split, ImageState.index, ImageState.source_label)
        .join(Image, Image.id == ImageState.image_id)
        .where(or_(ImageState.dataset_id != Image.dataset_id, ImageState.split != Image.split,
                   ImageState.index != Image.index,
                   ImageState.source_label.is_distinct_from(Image.label)))
        .order_by(ImageState.image_id)
    )  # fmt: skip
    for ds, split, index, label, copy_ds, copy_split, copy_index, copy_label in session.execute(
        query
    ):
        name = image_name(names, ds, split, index)
        if (copy_ds, copy_split, copy_index) != (ds, split, index):
            copy = image_name(names, copy_ds, copy_split, copy_index)
            found.add("decisions", name, f"image_state says the image is {copy}")
        if copy_label != label:
            found.add("decisions", name, f"image_state says the source gave "
                      f"{_label(copy_label)} where the image has {_label(label)}")  # fmt: skip
