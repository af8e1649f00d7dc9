"""The upstream leg: build and send the token request a mapping describes, and normalise the answer."""
