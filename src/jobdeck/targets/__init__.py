"""Deploy targets: the same catalog run by other infrastructure than ``jobdeck serve``."""
