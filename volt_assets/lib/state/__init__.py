"""The lake's state layer: per table, the lake as it stands at the end of each staging day.

`merge` makes a day's state from the day before and the day's staging; `chain` tells, from
three listings, which days' states are current; `table_state` builds the missing ones and
hands readers the state of a day.
"""
