"""The loop as a whole: a season through the real scheduler and its summary.
"""
