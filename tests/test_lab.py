"""`make lab` and `make publish`, run for real but on scratch copies, without a browser.

`make lab`: the Makefile's own recipe starts JupyterLab headless on a free localhost port, with a
token, its runtime, data and user-settings folders in a temporary directory and its root on a
scratch copy of book/ (so that saving writes nowhere in the checkout). Through the REST API the
test opens every chapter as a notebook (Jupytext's contents manager), checks the cells of one, saves
it back and compares the file, and checks the JupyterLab default that opens a .py file as a
notebook, the kernel and the two front-end extensions. The server is stopped in every case.

`make publish`: the Makefile's recipe (with the book build marked done) in a throw-away git
repository whose `_build/html` is a tiny site: the local gh-pages branch must hold the site and
.nojekyll, the working branch must be untouched and nothing may be pushed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MAKE = shutil.which("make")
START_TIMEOUT = 45  # seconds for JupyterLab to answer; it takes a few on a loaded 2-core machine
CHAPTER = "ch03_ce_svm.py"

pytestmark = pytest.mark.skipif(MAKE is None, reason="needs make")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    def __init__(self, url: str, token: str, root: Path):
        self.url, self.token, self.root = url, token, root

    def request(self, path: str, method: str = "GET", body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Authorization": f"token {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as response:
            text = response.read().decode()
        return json.loads(text) if text.lstrip().startswith(("{", "[")) else text


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "book"
    shutil.copytree(ROOT / "book", root, ignore=shutil.ignore_patterns("_build", "__pycache__", ".ipynb_checkpoints"))
    token, port = secrets.token_hex(16), free_port()
    env = dict(os.environ)
    env.pop("JUPYTER_CONFIG_PATH", None)
    env.update(JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_DATA_DIR=str(tmp / "data"),
               JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"), JUPYTER_PLATFORM_DIRS="1")
    # The recipe itself; -o marks the set-up steps done (no reinstall), LAB_ROOT is the scratch
    # copy, LAB_ARGS makes it headless on a known port.
    lab_args = f"--ServerApp.port={port} --ServerApp.port_retries=0 --no-browser --IdentityProvider.token={token}"
    cmd = [MAKE, "-s", "-C", str(ROOT), "-o", "venv", "-o", "data", "lab", f"BIN={BIN}", f"LAB_ROOT={root}",
           f"LAB_ARGS={lab_args}"]
    log = open(tmp / "lab.log", "w+")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = Lab(f"http://127.0.0.1:{port}", token, root)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"`make lab` exited with {proc.returncode}:\n{log.read()[-3000:]}")
            try:
                server.request("/api/status")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"JupyterLab did not answer within {START_TIMEOUT} s:\n{log.read()[-3000:]}")
                time.sleep(0.3)
        yield server
    finally:
        # the process group of the `make` started above: make, its shell and jupyter-lab
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        log.close()


def test_lab_serves_the_scratch_copy_of_the_book(lab):
    listing = lab.request("/api/contents/")
    names = {item["name"] for item in listing["content"]}
    assert CHAPTER in names and "intro.md" in names, f"the server's root is not book/: {sorted(names)}"
    assert lab.request("/api/status").get("started"), "the server reports no start time"


def toc_chapters() -> list[str]:
    """The percent-format chapters of the table of contents, as names inside book/."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [entry["file"] for entry in toc.get("chapters", [])]
    return [Path(f).name + ".py" for f in files if (ROOT / (f + ".py")).exists()]


def test_every_chapter_opens_as_a_notebook(lab):
    chapters = toc_chapters()
    assert CHAPTER in chapters
    for name in chapters:
        model = lab.request(f"/api/contents/{name}?type=notebook&content=1")
        assert model["type"] == "notebook", f"{name} does not open as a notebook: {model['type']}"
        kinds = {cell["cell_type"] for cell in model["content"]["cells"]}
        assert {"markdown", "code"} <= kinds, f"{name}: cells of kinds {kinds} only"


def test_chapter_cells_parameters_and_markdown(lab):
    nb = lab.request(f"/api/contents/{CHAPTER}?type=notebook&content=1")["content"]
    cells = nb["cells"]
    assert len(cells) > 5
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and tagged[0]["cell_type"] == "code", "one code cell must be tagged `parameters`"
    assert "num_classes" in "".join(tagged[0]["source"])
    markdown = [c for c in cells if c["cell_type"] == "markdown"]
    assert markdown and "".join(markdown[0]["source"]).startswith("# "), "the chapter's title cell is missing"
    assert nb["metadata"]["jupytext"]["text_representation"]["format_name"] == "percent"


@pytest.mark.parametrize("chapter", sorted(p.name for p in (ROOT / "book").glob("*.py")))
def test_opening_and_saving_a_chapter_leaves_its_file_byte_identical(lab, chapter):
    """What JupyterLab sends on save, unchanged, must give back the chapter's bytes: the headers
    filter out Jupytext's version stamps (``notebook_metadata_filter``), so an opened notebook is
    not marked modified and a no-op save leaves ``git status`` clean."""
    original = (ROOT / "book" / chapter).read_bytes()
    model = lab.request(f"/api/contents/{chapter}?type=notebook&content=1")
    saved = lab.request(f"/api/contents/{chapter}", "PUT",
                        {"type": "notebook", "format": "json", "content": model["content"]})
    assert saved["type"] == "notebook" and saved["path"] == chapter
    assert not (lab.root / chapter.replace(".py", ".ipynb")).exists(), "saving made a paired .ipynb"
    assert (lab.root / chapter).read_bytes() == original, "saving the notebook changed the chapter's file"


def test_a_py_file_opens_as_a_notebook_by_default(lab):
    settings = lab.request("/lab/api/settings/@jupyterlab/docmanager-extension:plugin")
    default = settings["schema"]["properties"]["defaultViewers"]["default"]
    assert default.get("python") == "Jupytext Notebook", (
        f"JupyterLab's default viewer for .py is {default.get('python')!r} (jupyter-config/labconfig not read?)")


def test_lab_has_jupytext_myst_widgets_and_the_venv_kernel(lab):
    page = lab.request("/lab")
    config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                  page, re.S).group(1))
    extensions = {ext["name"] for ext in config.get("federated_extensions", [])}
    # jupyterlab-myst renders the chapters' MyST (theorem boxes, citations, {glue} roles) in Markdown cells
    assert {"jupyterlab-jupytext", "@jupyter-widgets/jupyterlab-manager", "jupyterlab-myst"} <= extensions, (
        sorted(extensions))
    specs = lab.request("/api/kernelspecs")
    spec = specs["kernelspecs"][specs["default"]]["spec"]
    executable = spec["argv"][0]
    assert spec["language"] == "python"
    # a bare "python" is replaced, when the kernel starts, by the server's own interpreter: .venv's
    assert executable in ("python", "python3") or Path(executable).parent == BIN, spec["argv"]


# --- make publish ----------------------------------------------------------------------------------

def git(repo: Path, *args: str, env) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True,
                          text=True, timeout=60).stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_publish_stages_the_site_on_a_local_gh_pages_branch(tmp_path):
    if not (BIN / "ghp-import").exists():
        pytest.fail(f"ghp-import is not installed in {BIN} (requirements.txt pins it)")
    env = dict(os.environ, GIT_CONFIG_GLOBAL=str(tmp_path / "gitconfig"), GIT_CONFIG_NOSYSTEM="1")
    (tmp_path / "gitconfig").write_text("[user]\n\tname = Test\n\temail = test@example.invalid\n"
                                        "[init]\n\tdefaultBranch = main\n")
    remote, repo = tmp_path / "remote.git", tmp_path / "repo"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], env=env, check=True)
    subprocess.run(["git", "init", "-q", str(repo)], env=env, check=True)
    (repo / "README.md").write_text("a project\n")
    (repo / ".gitignore").write_text("_build/\n")
    git(repo, "add", "README.md", ".gitignore", env=env)
    git(repo, "commit", "-q", "-m", "start", env=env)
    git(repo, "remote", "add", "origin", str(remote), env=env)
    site = repo / "_build" / "html"
    (site / "_static").mkdir(parents=True)
    (site / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=book/intro.html" />\n')
    (site / "_static" / "_underscored.css").write_text("body {}\n")
    head = git(repo, "rev-parse", "HEAD", env=env).strip()

    run = subprocess.run([MAKE, "-s", "-f", str(ROOT / "Makefile"), "-o", "book-strict", "publish", f"BIN={BIN}"],
                         cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "git push origin gh-pages" in run.stdout

    files = set(git(repo, "ls-tree", "-r", "--name-only", "gh-pages", env=env).split())
    assert files == {"index.html", ".nojekyll", "_static/_underscored.css"}, files
    message = git(repo, "log", "-1", "--format=%s", "gh-pages", env=env)
    assert head[:7] in message, message
    assert git(repo, "symbolic-ref", "--short", "HEAD", env=env).strip() == "main"
    assert git(repo, "rev-parse", "HEAD", env=env).strip() == head
    assert git(repo, "status", "--porcelain", env=env).strip() == "", "the working tree changed"
    assert git(remote, "branch", "--list", env=env).strip() == "", "make publish pushed"
