"""A note: a short text and when it was written."""

from datetime import datetime

from sqlalchemy import DateTime, String, func
from sqlalchemy.orm import Mapped, mapped_column

from .meta import Base

#: The longest note, in characters: the column's size, which the form checks.
TEXT_LENGTH = 500


class Note(Base):
    """One note."""

    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(TEXT_LENGTH))
    created: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    def to_json(self):
        """The note as JSON-ready values."""
        return {"id": self.id, "text": self.text, "created": self.created.isoformat()}
