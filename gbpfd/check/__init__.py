"""``gbpfd check``: the first thing to run on any GPU.  Stages run in order,
each in its own subprocess with its own bound, so a hang or a crash in one
leaves a record of it and the next stage still runs."""
