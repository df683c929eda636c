"""Adapting a model to a site's labelled scans."""
