"""Collections: getting paid after the invoice. Sub-areas: `engine` (settings, policies, the
daily run), `notices`, `cases` (promises, disputes, holds, interest) and `work` (a collector's
queue). Their tables are in `models.py`; `hooks.py` reacts to the lower areas' signals."""
