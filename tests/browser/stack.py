"""stack.py - starts broker, simulator (scenario off) and gateway with the
demo console users through the integration harness, runs the command given
on the command line with BASE_URL, SIM_CONTROL_PORT and the demo passwords
in its environment, and stops everything afterwards. Exit status is the
command's."""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402


def main():
    stack = harness.Stack()
    users = os.path.join(stack.workdir, "users.conf")
    shutil.copy(os.path.join(harness.ROOT, "etc", "demo", "users.conf"), users)
    os.chmod(users, 0o600)
    stack.gw_argv += ["--set", f"http.users_file={users}"]
    stack.gw = harness.Process(stack.gw_argv, os.path.join(stack.workdir, "gw.log"))
    code = 1
    try:
        stack.start()
        harness.wait_port(stack.http_port, 20)
        env = dict(os.environ, BASE_URL=f"http://127.0.0.1:{stack.http_port}",
                   SIM_CONTROL_PORT=str(stack.control_port))
        code = subprocess.call(sys.argv[1:], env=env)
    finally:
        if code != 0:
            stack.dump_logs()
        stack.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
