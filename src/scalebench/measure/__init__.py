"""Measurement helpers: process trees, listening sockets, memory."""
