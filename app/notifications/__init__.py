"""In-app notifications for users: the bell and its count."""
