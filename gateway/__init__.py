"""gateway: an OAuth2 account-linking gateway.

It makes any authorization server speak the OAuth2 dialect that Alexa and Google Home expect,
with one YAML mapping file per provider and no database.
"""

__version__ = "0.1.0"
