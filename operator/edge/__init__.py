"""Cloudflare's API: every call heady makes to it (the Access applications and policies)."""
