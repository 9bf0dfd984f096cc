"""Accounts: sign-up, log in and out, password reset and change, invitations, switching tenant."""

# The browser's session key for the addresses it was just told to check for a link (sign-up,
# password reset); the sandbox inbox of `make run` shows such a visitor their own mail.
AWAITING_MAIL_FOR = "awaiting_mail_for"
