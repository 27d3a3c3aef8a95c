"""A small, real OpenID Connect provider for development and tests (`python -m workspace.dev_idp`): discovery,
JWKS, a sign-in form, the token endpoint with PKCE, userinfo and end-session; four seeded people, one per role.
Never for production: the people's passwords and the client secret ship in this repository."""
