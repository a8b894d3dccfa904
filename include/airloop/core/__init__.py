"""The ground every stage stands on: settings, dates, the lake, the use case, code version, devices.

Nothing here imports a stage package.
"""
