"""Test doubles that speak real protocols (a Twilio-compatible REST stub), for tests and demos."""
