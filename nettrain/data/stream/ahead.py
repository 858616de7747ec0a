"""Items produced ahead of their consumer by a thread of its own (`read_ahead`): parsing the next
chunks of a file overlaps the work on this one (training, evaluate, predict)."""

from __future__ import annotations

import contextlib
import queue
import threading
from typing import Any, Callable, Iterator


def read_ahead(items: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """`items`, produced by a thread of its own up to `depth` ahead of the one the consumer holds,
    the one being produced included (parsing the next chunks overlaps training on this one; the
    order is unchanged): at most `depth + 1` items are alive at a time. An exception in the thread is
    raised in the consumer; closing the consumer stops the thread."""
    q: queue.Queue = queue.Queue(maxsize=depth + 1)
    slots = threading.Semaphore(depth)  # items produced (or being produced) that the consumer has not taken
    stop = threading.Event()
    end = object()

    def wait(what: Callable[[], bool]) -> bool:
        """False once the consumer is gone (a full queue must not keep the thread waiting forever)."""
        while not stop.is_set():
            if what():
                return True
        return False

    def put(entry) -> bool:
        def once() -> bool:
            try:
                q.put(entry, timeout=0.1)
                return True
            except queue.Full:
                return False
        return wait(once)

    def work():
        try:
            it = iter(items)
            while wait(lambda: slots.acquire(timeout=0.1)):
                try:
                    item = next(it)
                except StopIteration:
                    put((end, None))
                    return
                if not put((item, None)):
                    return
                del item
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            put((end, e))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    thread = threading.Thread(target=work, name="nettrain-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = q.get()
            if error is not None:
                raise error
            if item is end:
                return
            slots.release()  # the consumer holds this one: the thread may produce the next
            yield item
            del item
    finally:
        stop.set()
