"""Worker processes: ``pool`` (the parent's side: a pool that survives a crashed, hung or
memory-hungry worker), ``child`` (the worker's side: job loop, lifeline, memory limit) and
``preload`` (what the fork server loads once before it forks any worker).
"""
