from lr_study.checks import *  # noqa: F401,F403  (moved; imports switch once the schedule rework lands)
