"""Signing visitors in to review apps: the install's own OpenID Connect provider (provider.py),
federated to GitLab (gitlab_oauth.py), carried out per request in flow.py, shown in pages.py."""
