"""The customer's pages: login and consent at the authorization endpoint (and, later, the consent dashboard)."""
