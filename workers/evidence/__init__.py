"""Evidence types shared by commands: plain data, no I/O, owned by no single command.

Drivers (``workers.probes``) produce them; analysis (``workers.analysis``) reads them. Analysis never
imports a driver, and a driver never imports one command's types.
"""
