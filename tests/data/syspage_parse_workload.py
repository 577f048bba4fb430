import os, signal, socket, threading, time
signal.signal(signal.SIGUSR1, lambda *a: None)
for _ in range(3):
    os.getpid()
try:
    open("/nonexistent/syspage", "rb")
except FileNotFoundError:
    pass
a, b = socket.socketpair()
a.send(b"ping)\" = 3 <0.1>")
b.recv(64)
def worker():
    for _ in range(20):
        os.getppid()
        time.sleep(0.001)
ts = [threading.Thread(target=worker) for _ in range(2)]
for t in ts: t.start()
os.kill(os.getpid(), signal.SIGUSR1)
for t in ts: t.join()
pid = os.fork()
if pid == 0:
    os.getuid()
    os._exit(3)
os.waitpid(pid, 0)
