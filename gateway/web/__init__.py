"""The HTTP side: the app, its handlers (one per endpoint), the flow cookie and the server around it."""
