"""A collector's work: the queue of today's calls and visits, their outcomes, and checks."""
