"""The store's transaction scripts, by subject, each importing only those below it:

    flow        flow control decisions (admit at intake, gate at claim, free slots)
    claim       leasing due runs
    endings     a run's end written, its parent resumed, a cancel
    intake      events, the runs they start, the waits they resume
    checkpoints a step saved under the run's lease (with the events it sends)
    run_end     a run's end under its lease (its announcements go through intake)

Below them all: `..tx` (the Tx plumbing) and `..rows` (row mapping).
"""
