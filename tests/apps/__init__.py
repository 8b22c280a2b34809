"""Pyramid applications that the server tests start in real servers."""
