"""The customer's pages: login and consent at the authorization endpoint (authorize), the consent dashboard
(dashboard), rendered by pages in the customer's language (locales, catalogue, language) under the bank's brand."""
