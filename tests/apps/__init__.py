"""Pyramid applications the tests serve: in real servers, or in process."""
