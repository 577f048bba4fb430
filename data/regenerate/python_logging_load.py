"""A CPython `logging` load: threads logging records to a file, as a busy service does.

Each LogRecord asks the kernel for the pid: logging.LogRecord.__init__ calls
os.getpid() for every record while logging.logProcesses is true (the default),
https://github.com/python/cpython/blob/3.11/Lib/logging/__init__.py#L340,
and glibc has not cached getpid since 2.25, so each record is one getpid(2).
The format shows %(process)d, so the pid is used, not just fetched.
Usage: python3 python_logging_load.py LOGFILE [RECORDS_PER_THREAD] [THREADS]
"""
import logging
import sys
import threading

FORMAT = "%(asctime)s %(process)d %(threadName)s %(levelname)s %(name)s: %(message)s"


def work(log: logging.Logger, records: int) -> None:
    for i in range(records):
        log.info("handled request %d status=%d bytes=%d", i, 200, 512 + i % 97)


def main() -> None:
    path = sys.argv[1]
    records = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(FORMAT))
    log = logging.getLogger("service")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    workers = [threading.Thread(target=work, args=(log, records), name=f"worker-{n}") for n in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()


if __name__ == "__main__":
    main()
