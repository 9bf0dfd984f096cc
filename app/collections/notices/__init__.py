"""Collections: notices sent up a ladder of levels, their letters and their pages."""
