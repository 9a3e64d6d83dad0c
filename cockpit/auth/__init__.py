"""Signing in to the cockpit: password hashing (``passwords``), the user accounts and
their roles and assignments in the store (``users``), and the sign-in page, session and
request guard on the Flask server (``web``)."""
