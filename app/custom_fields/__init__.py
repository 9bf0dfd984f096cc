"""Custom fields: the fields a workspace adds to its records, their definitions and values."""
