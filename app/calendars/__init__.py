"""Calendars (issue 21): each member's ICS feed, and their Google Calendar or Outlook calendar
kept in step with the same entries."""
