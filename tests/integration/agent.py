"""A vireod for one test: its own state folder, run folder and datastore in a
temporary folder, started in the background and stopped (SIGKILL if need be)
with every VMM it started when the test ends; and a client of its API that
checks every answer against docs/api/openapi.json."""

import http.client
import itertools
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import jsonschema

import vmtest

VIREOD = os.path.join(vmtest.BUILD, "bin", "vireod")
OPENAPI = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "api", "openapi.json")


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class OpenApi:
    """The API's document: the schema of each documented answer."""

    def __init__(self):
        with open(OPENAPI) as file:
            self.document = json.load(file)
        self.routes = []
        for template, operations in self.document["paths"].items():
            pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
            self.routes.append((re.compile(pattern), operations))
        self.checked = set()  # (template pattern, method, status) seen

    def check(self, method, target, status, body, content_type="application/json"):
        """Fails unless `body` is what the document says `method target`
        answers with `status`. Undocumented: only 404 or 405 with an Error."""
        path = target.split("?")[0]
        for pattern, operations in self.routes:
            if pattern.match(path) and method.lower() in operations:
                responses = operations[method.lower()]["responses"]
                if str(status) not in responses:
                    raise AssertionError(f"{method} {target}: status {status} is not documented "
                                         f"(documented: {sorted(responses)}): {body}")
                response = responses[str(status)]
                if "$ref" in response:  # "#/components/responses/NAME"
                    response = self.document["components"]["responses"][
                        response["$ref"].split("/")[-1]]
                content = response["content"]
                if content_type not in content:
                    raise AssertionError(f"{method} {target}: {status} as {content_type}, "
                                         f"documented as {sorted(content)}")
                schema = content[content_type]["schema"]
                self.checked.add((pattern.pattern, method, status))
                break
        else:
            if status not in (404, 405):
                raise AssertionError(f"{method} {target}: undocumented, yet answered {status}")
            schema = {"$ref": "#/components/schemas/Error"}
        # The components ride along, so that "#/components/..." resolves.
        rooted = {"components": self.document["components"], **schema}
        jsonschema.Draft202012Validator(rooted).validate(body)


class Agent:
    """`datastore`: register `ds1` (self.datastore) through the API once
    vireod first runs."""

    def __init__(self, datastore=True):
        self.root = tempfile.mkdtemp(prefix="vireo-agent-")
        self.state = os.path.join(self.root, "state")
        self.run_dir = os.path.join(self.root, "run")
        self.datastore = os.path.join(self.root, "ds1")
        self.socket = os.path.join(self.run_dir, "vireod.sock")
        self.api = OpenApi()
        self.process = None
        os.makedirs(self.datastore)
        self.datastore_wanted = datastore

    def env(self):
        return dict(os.environ, VIREO_STATE_DIR=self.state, VIREO_RUN_DIR=self.run_dir,
                    VIREO_SOCKET=self.socket)

    def start(self, *arguments):
        if os.path.exists(self.socket):
            os.unlink(self.socket)  # a killed vireod's; the new one replaces it anyway
        self.log = open(os.path.join(self.root, "vireod.log"), "a")
        self.process = subprocess.Popen([VIREOD, "--state-dir", self.state, "--run-dir",
                                         self.run_dir, *arguments], stdout=self.log,
                                        stderr=subprocess.STDOUT, env=self.env(),
                                        start_new_session=True)
        vmtest.wait_until(lambda: os.path.exists(self.socket) or self.process.poll() is not None,
                          timeout=30, what="vireod's socket")
        if self.process.poll() is not None:
            raise AssertionError(f"vireod ended at once ({self.process.returncode}): "
                                 f"{self.log_text()}")
        if self.datastore_wanted:
            status, answer = self.request("POST", "/v1/datastores",
                                          {"name": "ds1", "path": self.datastore})
            if status != 201:
                raise AssertionError(f"adding datastore ds1: {status} {answer}")
            self.datastore_wanted = False

    def log_text(self):
        with open(os.path.join(self.root, "vireod.log")) as file:
            return file.read()

    def stop(self, sig=signal.SIGTERM):
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)
        if self.process:
            self.log.close()
        self.process = None

    def listen(self):
        """Starts vireod serving TCP with TLS too, on a free loopback port;
        returns its port."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.start("--listen", f"127.0.0.1:{self.port}")
        vmtest.wait_until(lambda: "with TLS" in self.log_text(), timeout=30,
                          what="vireod's TLS listener")
        self.certificate = os.path.join(self.state, "tls", "host.crt")
        return self.port

    def tls_connection(self):
        context = ssl.create_default_context(cafile=self.certificate)
        return http.client.HTTPSConnection("localhost", self.port, context=context, timeout=60)

    def request(self, method, target, body=None, raw=None, headers=None, token=None):
        """(status, body: JSON, or text for text/plain); the answer is checked
        against the OpenAPI document. With a token: over TCP with TLS."""
        if token is None:
            connection = UnixConnection(self.socket)
        else:
            connection = self.tls_connection()
            headers = dict(headers or {})
            if token:
                headers["Authorization"] = f"Bearer {token}"
        payload = raw if raw is not None else (json.dumps(body) if body is not None else None)
        try:
            connection.request(method, target, body=payload, headers=headers or {})
            response = connection.getresponse()
            content_type = response.getheader("Content-Type", "").split(";")[0]
            raw_answer = response.read().decode()
        finally:
            connection.close()  # also when vireod is gone or hangs up
        data = raw_answer if content_type == "text/plain" else json.loads(raw_answer)
        self.api.check(method, target, response.status, data, content_type)
        return response.status, data

    def cli(self, *arguments, check=True, input=None):
        result = subprocess.run([vmtest.VIREO, *arguments], capture_output=True, text=True,
                                env=self.env(), timeout=120, input=input)
        if check and result.returncode != 0:
            raise AssertionError(f"vireo {' '.join(arguments)} exited {result.returncode}: "
                                 f"{result.stderr}")
        return result

    def vmm_pids(self):
        """The VMMs running for this agent's VMs (by their control sockets)."""
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as file:
                        arguments = file.read().split(b"\0")
                    if os.path.basename(arguments[0]) == b"vireo-vmm" and \
                            self.run_dir.encode() in b" ".join(arguments):
                        pids.append(int(entry))
                except OSError:
                    pass
        return pids

    def close(self):
        self.stop(signal.SIGKILL)
        for pid in self.vmm_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while self.vmm_pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)


class GuestConsole:
    """The serial console of a VM vireod runs: keys typed through its VMM's
    control socket, output read back from its console.log."""

    def __init__(self, test_agent, name):
        self.control = vmtest.SocketClient(
            os.path.join(test_agent.run_dir, "vms", name, "control.sock"))
        self.log = os.path.join(test_agent.datastore, name, "console.log")
        self.read_to = 0
        self.markers = itertools.count()

    def text(self):
        with open(self.log, "rb") as file:
            return file.read().decode(errors="replace").replace("\r", "")

    def expect(self, pattern, timeout=60, what=None):
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            found = regex.search(text, self.read_to)
            if found:
                self.read_to = found.end()
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what or repr(pattern)} on the console within "
                                     f"{timeout} s\n--- console (last 3000 characters) ---\n"
                                     f"{text[-3000:]}")
            time.sleep(0.2)

    def type(self, line):
        keys = (line + "\n").encode()
        while keys:  # the UART's receive FIFO takes what it has room for
            answer = self.control.request("console-input", hex=keys.hex())
            keys = keys[answer["result"]["accepted"]:]
            if keys:
                time.sleep(0.01)

    def check(self, command, timeout=60):
        """The output of `command` in the guest's shell, which must succeed."""
        marker = f"vireo-done-{next(self.markers)}"
        start = self.read_to
        self.type(f"{command}; echo {marker}=$?")
        found = self.expect(rf"{marker}=(\d+)", timeout, f"the end of {command!r}")
        output = self.text()[start:found.start()]
        if found.group(1) != "0":
            raise AssertionError(f"{command!r} exited {found.group(1)}:\n{output}")
        return output
