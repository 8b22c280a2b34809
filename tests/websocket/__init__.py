"""Tests of aiopyramid.websocket."""
