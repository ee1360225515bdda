"""Declarative ORM classes for the index, for code that wants objects rather than rows.

They map onto the Core tables in :mod:`.tables` ("declarative with imperative table"), so
there is one definition of every column and the ``sshrec ls`` path never imports the ORM.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import DeclarativeBase, Mapped, relationship

from .tables import RECORD_COLUMNS, index_state, metadata, screen_text, sessions


class Base(DeclarativeBase):
    metadata = metadata


class Session(Base):
    """One recorded session: the session record's fields as attributes."""

    __table__ = sessions
    screen: Mapped[list[ScreenText]] = relationship(order_by="ScreenText.chunk", viewonly=True)

    def to_record(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in RECORD_COLUMNS}


class ScreenText(Base):
    """A stretch of a session's screen output, with the times its parts appeared."""

    __table__ = screen_text


class IndexState(Base):
    """Which version of a session's files the index holds (for incremental sync)."""

    __table__ = index_state
