"""A run's TensorBoard events: a side log. metrics.csv and the checkpoints are the run's record, so a
failed write (the tensorboard/ folder removed while the run trains, a full disk) is said once, as a
warning naming the folder, and the run goes on without events.

tensorboard writes from a thread of its own: its error is kept for the next flush, which raises it
here, and its thread's own traceback ("Exception in thread Thread-1") is not printed meanwhile.
"""
from __future__ import annotations

import threading
import warnings
from pathlib import Path

__all__ = ["TensorBoardLog"]


class TensorBoardLog:
    """Scalars into ``folder`` with ``torch.utils.tensorboard``; no write error escapes."""

    def __init__(self, folder: Path):
        self.folder, self._writer, self._threads = folder, None, set()
        self._previous_hook = threading.excepthook
        before = set(threading.enumerate())
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(folder))
        except Exception as err:  # a file named tensorboard, no permission: training needs no events
            self._fail(err)
            return
        self._threads = set(threading.enumerate()) - before  # the writer's own
        threading.excepthook = self._quiet_writer_thread

    def scalars(self, values: dict, step: int) -> None:
        if self._writer is None:
            return
        try:
            for key, value in values.items():
                self._writer.add_scalar(key, value, step)
            self._writer.flush()
        except Exception as err:  # the writer thread's error, raised again on this thread
            self._fail(err)

    def close(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception as err:
                self._fail(err)
        self._writer = None
        if threading.excepthook == self._quiet_writer_thread:
            threading.excepthook = self._previous_hook

    def _quiet_writer_thread(self, args) -> None:
        if args.thread in self._threads:  # said by _fail at the next flush, once, in one line
            return
        self._previous_hook(args)

    def _fail(self, err: Exception) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()  # its thread stops; the error it raises again was said below
            except Exception:
                pass
        why = err.strerror.lower() if isinstance(err, OSError) and err.strerror else \
            (str(err).splitlines() or [type(err).__name__])[0]
        warnings.warn(f"{self.folder}: TensorBoard events could not be written ({why}); training goes on without "
                      "them (metrics.csv and the checkpoints hold the run)", stacklevel=3)
