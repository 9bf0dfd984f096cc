"""The collection engine: settings, policies and their ladders, and the daily run that makes
notices from them (its pages and its command)."""
