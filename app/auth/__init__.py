"""Accounts: sign-up, log in and out, password reset and change, invitations, switching tenant."""
