"""Every programme's tables on one `MetaData`, for migrations and tests.

Each programme declares its tables on the core's `Base`; importing this module
makes sure all of them are registered before the metadata is read.
"""

from __future__ import annotations

import models.medical.tables  # noqa: F401  (registers the medical tables)
from models.core.tables import Base

metadata = Base.metadata
