"""Runners: one function per command, owning connections, transactions and the order of work."""
