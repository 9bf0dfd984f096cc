"""Projects (engagements) and their milestone payment plans."""
