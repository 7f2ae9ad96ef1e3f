# UpgradeConsole step helper: one per SSH connection, started by the dashboard over `sh -s` (python3 -S).
#
# It does what StepScripts.StartAndFollow does for each step, with the same files, checks and messages, but
# without starting a program per step: the step directory and its files are made by this process, the runner is
# spawned directly in a new session (posix_spawn, setsid), and the log is read here and sent back. So a step
# costs the runner (sh) and the script's bash, not also a channel's shell, mkdir, setsid and tail. Everything a
# step leaves on the target is what the shell path leaves, so status, follow, cancel and reattach (still shell
# scripts) work on steps started either way, and a step keeps running when this process or its link dies.
#
# Input, from the dashboard, one request a frame (no json: its import alone costs more than a step):
#   "run <id> <6 lengths>\n" then the runs directory, step directory, time limit, run-as user, runner and script,
#   each that many bytes;  "drop <id>\n": stop following step <id> (it keeps running).
# Output: "UC:HELPER 1\n", then frames "<id> <kind> <length>\n<bytes>": o = log bytes, e = the text the shell
# path prints on stderr (UC:STARTED, UC:ALREADY-STARTED, a refusal, UC:STATE), x = the shell path's exit code.
# Paths starting with ~/ are under $HOME, as the shell path's "$HOME"/'...' words are.
import os
import pwd
import select
import signal
import stat
import sys

READ_BYTES = 256 * 1024
POLL_MIN, POLL_MAX = 0.002, 0.05

env = dict(os.environ)
# The bootstrap stops Python from coercing the C locale (it would export LC_CTYPE to every step); put back what the user had.
saved = env.pop('UC_HELPER_PCL', '-')
if saved == '-':
    env.pop('PYTHONCOERCECLOCALE', None)
else:
    env['PYTHONCOERCECLOCALE'] = saved
home = env.get('HOME', '')
os.umask(0o077)
user = pwd.getpwuid(os.geteuid()).pw_name


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def send(ident, kind, data=b''):
    write_all(1, b'%d %s %d\n' % (ident, kind, len(data)) + data)


def path(p):
    return home + '/' + p[2:] if p.startswith('~/') else p


def private(d):
    try:
        st = os.lstat(d)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def create(name, data):
    # set -C: never over an existing file.
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def spawn(argv, log):
    defaults = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD)
    try:
        return os.posix_spawnp(argv[0], argv, env, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, '/dev/null', os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, log, os.O_WRONLY | os.O_APPEND, 0),
            (os.POSIX_SPAWN_DUP2, 1, 2)], setsid=True, setsigdef=defaults)
    except (AttributeError, NotImplementedError, TypeError):
        pid = os.fork()
        if pid:
            return pid
        try:
            os.setsid()
            for s in defaults:
                signal.signal(s, signal.SIG_DFL)
            null = os.open('/dev/null', os.O_RDONLY)
            out = os.open(log, os.O_WRONLY | os.O_APPEND)
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)


class Step:
    def __init__(self, ident, directory, pid, fd):
        self.ident, self.dir, self.pid, self.fd, self.ended = ident, directory, pid, fd, False


following = {}
by_pid = {}


def refuse(ident, code, text):
    send(ident, b'e', text.encode('utf-8', 'surrogateescape') + b'\n')
    send(ident, b'x', str(code).encode())


def start(ident, fields):
    runs, d, limit, runas, runner, script = fields
    runs, d = path(runs.decode('utf-8', 'surrogateescape')), path(d.decode('utf-8', 'surrogateescape'))
    try:
        os.makedirs(d, 0o777, exist_ok=True)
    except OSError as e:
        return refuse(ident, 4, 'mkdir: %s' % e)
    for x in (runs, os.path.dirname(d), d):
        if not private(x):
            return refuse(ident, 5, '[upgradeconsole] refusing to start: %s is not a directory of %s closed to other users (owner-only writes)' % (x, user))
    try:
        os.close(os.open(d + '/.started', os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError:
        return refuse(ident, 3, 'UC:ALREADY-STARTED')
    try:
        create(d + '/runner', runner)
        create(d + '/script', script)
        create(d + '/log', b'')
        fd = os.open(d + '/log', os.O_RDONLY)
        pid = spawn(['sh', d + '/runner', d, limit.decode(), runas.decode()], d + '/log')
    except OSError as e:
        return refuse(ident, 4, str(e))
    send(ident, b'e', b'UC:STARTED %d\n' % pid)
    step = Step(ident, d, pid, fd)
    following[ident] = step
    by_pid[pid] = step


def read_first(name):
    try:
        with open(name, 'rb') as f:
            return f.readline().split()
    except OSError:
        return []


def finish(step):
    # What StepScripts.PrintState prints, for a runner that has ended (this process reaped it).
    d = step.dir
    fields = read_first(d + '/exit')
    code = fields[0].decode() if fields else ''
    size = fields[1].decode() if len(fields) > 1 else ''
    if not (code and size):
        try:
            size = str(os.stat(d + '/log').st_size)
        except OSError:
            size = '0'
    cancelled = int(os.path.exists(d + '/cancelled'))
    timedout = int(os.path.exists(d + '/timed-out'))
    pids = [] if code else read_first(d + '/pid')
    pid = pids[0].decode() if pids else ''
    send(step.ident, b'e', ('UC:STATE started=1 exit=%s size=%s pid=%s alive=0 starting=0 cancelled=%d timedout=%d\n'
                            % (code, size, pid, cancelled, timedout)).encode())
    send(step.ident, b'x', b'0')
    forget(step)


def forget(step):
    following.pop(step.ident, None)
    if step.fd is not None:
        os.close(step.fd)
        step.fd = None


def pump(step):
    # Whatever the log has now, in reads of READ_BYTES; at most 16 of them, so one busy step cannot starve the rest.
    got = False
    for _ in range(16):
        data = os.read(step.fd, READ_BYTES)
        if not data:
            if step.ended:
                finish(step)
            return got
        send(step.ident, b'o', data)
        got = True
    return got


def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        step = by_pid.pop(pid, None)
        if step is not None:
            step.ended = True


def main():
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    write_all(1, b'UC:HELPER 1\n')
    pending = b''
    poll = POLL_MIN
    while True:
        ready = select.select([0, wake_r], [], [], poll if following else None)[0]
        if wake_r in ready:
            os.read(wake_r, 4096)
        reap()
        if 0 in ready:
            chunk = os.read(0, 65536)
            if not chunk:
                # The dashboard went away: the steps carry on without us.
                return
            pending += chunk
            while b'\n' in pending:
                head, rest = pending.split(b'\n', 1)
                words = head.split()
                ident = int(words[1])
                if words[0] == b'drop':
                    pending = rest
                    if ident in following:
                        forget(following[ident])
                    continue
                lengths = [int(w) for w in words[2:8]]
                if len(rest) < sum(lengths):
                    break
                fields = []
                for n in lengths:
                    fields.append(rest[:n])
                    rest = rest[n:]
                pending = rest
                start(ident, fields)
        got = False
        for step in list(following.values()):
            got = pump(step) or got
        poll = POLL_MIN if got else min(poll * 2, POLL_MAX)


try:
    main()
except BrokenPipeError:
    pass
