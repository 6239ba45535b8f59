"""Where kinema keeps its state (keys, consent registry, audit log, databases).

KINEMA_HOME names the folder; without it, the platform's user data folder for
"kinema" is used (for example ~/.local/share/kinema). Tests point KINEMA_HOME at a
temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_dir

HOME_ENV = "KINEMA_HOME"


def kinema_home(create: bool = True) -> Path:
    """The state folder: $KINEMA_HOME if set, else the user data folder; created if asked."""
    configured = os.environ.get(HOME_ENV, "").strip()
    home = Path(configured).expanduser() if configured else Path(user_data_dir("kinema"))
    if create:
        home.mkdir(parents=True, exist_ok=True)
    return home
