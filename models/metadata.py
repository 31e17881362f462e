"""Every programme's tables on one `MetaData`, for migrations and tests.

Each programme declares its tables on the core's `Base`; importing this module
makes sure all of them are registered before the metadata is read.
"""

from __future__ import annotations

from models.core.tables import Base
from models.loans import tables as loans_tables  # noqa: F401  (registers them)
from models.medical import tables as medical_tables  # noqa: F401  (registers them)

metadata = Base.metadata
