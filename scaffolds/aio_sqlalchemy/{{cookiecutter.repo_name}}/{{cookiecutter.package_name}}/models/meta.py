"""The models' declarative base, with constraint names that Alembic relies on."""

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Named constraints: migrations can then drop or alter them on every
# database (the same names as Pyramid's starter template).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """The base class of the models."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
