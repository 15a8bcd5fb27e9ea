"""``kmq.web.server`` and ``kmq serve``: addresses, uvicorn in the background, the command, and
the web extra being optional."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys

import httpx
import pytest
from typer.testing import CliRunner

from kmq.web import BackgroundServer, ServerConfig, bind, create_app, is_loopback, url_of


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("localhost", True), ("LOCALHOST", True),
    ("::1", True), ("[::1]", True), ("0.0.0.0", False), ("192.168.1.10", False), ("::", False),
    ("example.org", False), ("", False),
])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_bind_gives_a_listening_socket_and_its_url():
    sock = bind("127.0.0.1", 0)
    try:
        url = url_of(sock)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        # it listens already: a client can connect before any server runs
        with socket.create_connection(("127.0.0.1", sock.getsockname()[1]), timeout=5):
            pass
        with pytest.raises(OSError):  # the port is taken
            bind("127.0.0.1", sock.getsockname()[1])
    finally:
        sock.close()
    with pytest.raises(socket.gaierror):
        bind("no-such-host.invalid", 0)


def test_background_server_serves_until_it_is_left():
    with BackgroundServer(create_app(ServerConfig(warm_up=False))) as server:
        assert httpx.get(server.url + "/api/config", timeout=30).status_code == 200
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url + "/api/config", timeout=5)


def test_background_server_that_cannot_start_says_so():
    async def broken(scope, receive, send):  # fails its ASGI lifespan startup
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.failed", "message": "no"})

    with pytest.raises(RuntimeError, match="did not start"):
        with BackgroundServer(broken, timeout=30):
            pass


# ---------------------------------------------------------------------------------------------
# The command


def test_serve_warns_off_loopback_and_guards_hosts_on_loopback(monkeypatch):
    from kmq.cli import app

    calls = []
    monkeypatch.setattr("kmq.web.serve", lambda sock, application: calls.append(
        (sock.getsockname(), application.state.config)) or sock.close())
    runner = CliRunner()
    result = runner.invoke(app, ["serve", "--port", "0", "--max-upload-mb", "2",
                                 "--max-pixels", "1000"])
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr and "serving on http://127.0.0.1:" in result.stderr
    (address, config), = calls
    assert address[0] == "127.0.0.1" and config.max_upload_bytes == 2_000_000
    assert config.max_pixels == 1000 and "localhost" in config.allowed_hosts
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 0
    assert result.stderr.startswith("kmq: warning: listening on 0.0.0.0: ")
    assert "reachable from other machines" in result.stderr
    assert calls[1][1].allowed_hosts is None


def test_serve_reports_a_port_in_use_and_an_unknown_host():
    from kmq.cli import app

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", "--port", str(port)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"kmq: error: cannot listen on 127.0.0.1:{port} (")
    result = CliRunner().invoke(app, ["serve", "--host", "no-such-host.invalid"])
    assert result.exit_code == 2
    assert result.stderr.startswith("kmq: error: cannot resolve --host 'no-such-host.invalid'")


def test_kmq_serve_process_serves_the_page_and_stops_on_ctrl_c():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "kmq", "serve", "--port", "0"],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stderr.readline()
        match = re.match(r"kmq: serving on (http://127\.0\.0\.1:\d+) ", line)
        assert match, line
        # the socket listens before the line is printed: the request waits for the server
        page = httpx.get(match[1] + "/", timeout=120)
        assert page.status_code == 200 and "kmq" in page.text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()


# ---------------------------------------------------------------------------------------------
# The optional extra kmq[web]


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)


def test_kmq_and_its_command_do_not_import_the_web_stack():
    done = run_python("import sys, kmq, kmq.cli, kmq.files; "
                      "print(sorted({'fastapi', 'uvicorn', 'starlette'} & set(sys.modules)))")
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


@pytest.mark.parametrize("absent", [("fastapi", "uvicorn"), ("fastapi",), ("uvicorn",)])
def test_serve_without_the_web_extra_names_it_in_one_line(absent):
    block = "; ".join(f"sys.modules[{name!r}] = None" for name in absent)
    done = run_python(f"import sys; {block}; from kmq.cli import main; "
                      f"sys.argv = ['kmq', 'serve', '--port', '0']; main()")
    assert done.returncode == 2, done.stderr
    missing = "fastapi" if "fastapi" in absent else "uvicorn"
    assert done.stderr == (f"kmq: error: the web page (kmq serve) needs {missing}, which is not "
                           f"installed: pip install 'kmq[web]'\n")
    # the other commands do not mind
    done = run_python(f"import sys; {block}; from kmq.cli import main; "
                      f"sys.argv = ['kmq', '--help']; main()")
    assert done.returncode == 0 and "serve" in done.stdout, done.stderr


def test_importing_kmq_web_without_fastapi_names_the_extra():
    done = run_python("import sys; sys.modules['fastapi'] = None\n"
                      "try:\n    import kmq.web\n"
                      "except ImportError as exc:\n    print(type(exc).__name__, exc)")
    assert done.stdout.strip() == ("MissingExtraError the web page (kmq serve) needs fastapi, "
                                   "which is not installed: pip install 'kmq[web]'"), done.stderr
