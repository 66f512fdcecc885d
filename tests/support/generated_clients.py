"""Clients generated from the running service's /api/v1/schema, as an integrator generates them:
Python by openapi-python-client, TypeScript by openapi-typescript (types) with openapi-fetch
(calls), compiled by tsc and run by Node. Each is generated once per schema (its SHA-256 names
the cache folder), so a test run pays the generation only when the schema changed.

Both offer the same `call(method, path, params, body) -> (status, body)`, so one scenario drives
either."""

import hashlib
import importlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from tests.support.node import PACKAGES, node_modules
from tests.support.worker import ROOT

PY_CACHE = ROOT / ".data" / "clients"
TS_CACHE = PACKAGES / ".generated"  # inside tests/support/js, so its node_modules resolve
TS_SCRIPT = PACKAGES / "openapi_client.mts"
PACKAGE = "agentbot_api_client"
# As docs/clients.md says: a create's defaults are the server's to fill in, not fields to send.
TS_TYPES_OPTIONS = ("--default-non-nullable", "false")


def schema_digest(schema_text: str) -> str:
    return hashlib.sha256(schema_text.encode()).hexdigest()[:16]


def _fresh(folder: Path, build) -> Path:
    """`folder`, built by `build(tmp)` into a temporary sibling first when it is missing."""
    if folder.is_dir():
        return folder
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    build(tmp)
    try:
        tmp.rename(folder)
    except OSError:  # another run made it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


# --- Python ---------------------------------------------------------------------------------------
class PythonClient:
    def __init__(self, schema_text: str, base_url: str, key: str) -> None:
        generator = importlib.metadata.version("openapi-python-client")
        folder = PY_CACHE / f"python-{generator}-{schema_digest(schema_text)}"
        _fresh(folder, lambda tmp: self._generate(tmp, schema_text))
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]  # another schema's package, imported earlier in this process
        self.package = importlib.import_module(PACKAGE)
        self.models = importlib.import_module(f"{PACKAGE}.models")
        self.client = self.package.AuthenticatedClient(base_url=base_url, token=key, raise_on_unexpected_status=False)
        self.schema = json.loads(schema_text)

    @staticmethod
    def _generate(tmp: Path, schema_text: str) -> None:
        (tmp / "schema.json").write_text(schema_text)
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        subprocess.run(
            [Path(sys.executable).parent / "openapi-python-client", "generate", "--path", tmp / "schema.json"]
            + ["--meta", "none", "--output-path", tmp / PACKAGE],
            check=True,
            capture_output=True,
            timeout=120,
            env=env,
        )

    def _operation(self, method: str, path: str):
        operation = self.schema["paths"][path][method]
        tag = operation["tags"][0]
        return operation, importlib.import_module(f"{PACKAGE}.api.{tag}.{operation['operationId']}")

    def _body(self, method: str, operation: dict, body: dict):
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        model = getattr(self.models, ref.rsplit("/", 1)[-1])
        if method != "patch":
            return model.from_dict(body)
        # As a person writes a PATCH: the model's constructor with only the fields to change (the
        # attribute's name may differ from the JSON one, `format_` for `format`).
        parsed = model.from_dict(body)
        values = {field.name: getattr(parsed, field.name) for field in attrs.fields(model)}
        named = {a: v for a, v in values.items() if v is not self.package.types.UNSET and a != "additional_properties"}
        return model(**named)

    def call(self, method: str, path: str, params: dict | None = None, body: dict | None = None):
        operation, module = self._operation(method.lower(), path)
        kwargs = dict(params or {})
        if body is not None:
            kwargs["body"] = self._body(method.lower(), operation, body)
        response = module.sync_detailed(client=self.client, **kwargs)
        return response.status_code, (json.loads(response.content) if response.content else None)

    def close(self) -> None:
        pass


# --- TypeScript -----------------------------------------------------------------------------------
class TypeScriptClient:
    def __init__(self, schema_text: str, base_url: str, key: str) -> None:
        modules = node_modules() / ".bin"
        if not (modules / "openapi-typescript").exists() or not (modules / "tsc").exists():
            pytest.fail(f"openapi-typescript and typescript are missing from {PACKAGES}: run scripts/node_deps.sh")
        # The folder is named by all that makes it: the schema, the script and how the types are made.
        script_digest = hashlib.sha256(TS_SCRIPT.read_bytes() + " ".join(TS_TYPES_OPTIONS).encode()).hexdigest()[:8]
        folder = TS_CACHE / f"ts-{schema_digest(schema_text)}-{script_digest}"
        _fresh(folder, lambda tmp: self._generate(tmp, schema_text, modules))
        env = {**os.environ, "AGENTBOT_URL": base_url, "AGENTBOT_KEY": key}
        self.folder, self.modules = folder, modules
        self.proc = subprocess.Popen(
            ["node", folder / "openapi_client.mjs"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def run_program(self, name: str, code: str) -> str:
        """Compile `code` (a module importing the types from "./schema.js") beside the generated
        types with tsc --strict, run it with Node and return what it printed."""
        (self.folder / f"{name}.mts").write_text(code)
        compiled = subprocess.run(
            [self.modules / "tsc", "--strict", "--skipLibCheck", "--target", "es2022", "--module", "nodenext"]
            + ["--moduleResolution", "nodenext", f"{name}.mts"],
            capture_output=True,
            text=True,
            timeout=180,
            cwd=self.folder,
        )
        assert compiled.returncode == 0, f"tsc refused {name}:\n{compiled.stdout}"
        ran = subprocess.run(["node", f"{name}.mjs"], capture_output=True, text=True, timeout=60, cwd=self.folder)
        assert ran.returncode == 0, ran.stderr
        return ran.stdout

    @staticmethod
    def _generate(tmp: Path, schema_text: str, modules: Path) -> None:
        (tmp / "schema.json").write_text(schema_text)
        run = {"check": True, "capture_output": True, "timeout": 180, "cwd": tmp}
        subprocess.run([modules / "openapi-typescript", "schema.json", "--output", "schema.d.ts", *TS_TYPES_OPTIONS], **run)
        shutil.copy(TS_SCRIPT, tmp / "openapi_client.mts")
        compiled = subprocess.run(
            [modules / "tsc", "--strict", "--skipLibCheck", "--target", "es2022", "--module", "nodenext"]
            + ["--moduleResolution", "nodenext", "openapi_client.mts"],
            capture_output=True,
            text=True,
            timeout=180,
            cwd=tmp,
        )
        assert compiled.returncode == 0, f"tsc refused the client against the generated types:\n{compiled.stdout}"

    def call(self, method: str, path: str, params: dict | None = None, body: dict | None = None):
        line = {"method": method.upper(), "path": path, "params": params or {}}
        if body is not None:
            line["body"] = body
        self.proc.stdin.write(json.dumps(line) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        assert answer, "the Node client exited"
        answer = json.loads(answer)
        return answer["status"], answer["body"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=10)
