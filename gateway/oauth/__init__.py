"""The OAuth2 rules the gateway keeps itself: errors and answers, PKCE, sealed values, client auth,
single use, refresh grace, per-link context and the platforms' redirect rules."""
