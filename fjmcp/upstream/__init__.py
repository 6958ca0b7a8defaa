"""The Forgejo client: OAuth2 provider and API calls."""
