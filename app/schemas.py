"""Transitional: the wire types moved to distillery.types; this module re-exports them for the
code that still imports them from here."""

from distillery.types.catalog.augmentations import *  # noqa: F403
from distillery.types.catalog.base import CatalogEntry, CatalogList
from distillery.types.catalog.schedules import *  # noqa: F403
from distillery.types.catalog.teacher_sources import *  # noqa: F403
from distillery.types.errors import *  # noqa: F403
from distillery.types.estimates import *  # noqa: F403
from distillery.types.fields import *  # noqa: F403
from distillery.types.fields import MAX_JSON_DEPTH
from distillery.types.files import *  # noqa: F403
from distillery.types.job_spec import *  # noqa: F403
from distillery.types.jobs import *  # noqa: F403

__all__ = ["MAX_JSON_DEPTH", "CatalogEntry", "CatalogList"]
