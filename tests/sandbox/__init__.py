"""A local emulator of Azure Resource Manager and Entra ID for this collection's tests.

Start it with ``python -m tests.sandbox up``; see ``tests/sandbox/README.md``.
"""
