"""The OAuth 2.0 / FAPI authorization server, built on Authlib (see `server.build_authorization_server`)."""
