"""Duebook's Tally connector agent: pairs with a workspace, then relays Duebook's requests to
TallyPrime on this computer and Tally's answers back (see `relay.Agent`)."""

__version__ = "0.1.0"
