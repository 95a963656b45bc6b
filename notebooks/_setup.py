"""Shared setup for the walkthrough notebooks: imported by each one's first cell.

It makes a notebook's output the same from one run to the next, so that nbval can
compare a fresh run with the stored one: log lines are printed plainly, without
timestamps or tracebacks (whose file paths differ between machines), each under
the cell that caused it, and uvicorn's own logs stay quiet.
"""

from channels_core.anatomy.notebook import plain_logs

plain_logs()
