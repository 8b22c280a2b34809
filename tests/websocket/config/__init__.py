"""Tests of aiopyramid.websocket.config: the view mappers of each server."""
