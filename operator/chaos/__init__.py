"""`heady-chaos`: the command chaos Jobs run (inject or recover one experiment's fault).

It uses the synchronous official client because it is a short-lived process inside a Job; the
operator runs the same functions in-process only with HEADY_CHAOS_EXECUTOR=inline (tests).
"""
