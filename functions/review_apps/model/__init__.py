"""The stored record and its fixed value sets, apart from the event parsers (review_apps.events)."""
