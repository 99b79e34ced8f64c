"""The Python examples of README.md, docs/clients.md and docs/ope.md run as written.

Every ```` ```python ```` block of these files is a test. A block that cannot run here says
so in the file itself, with an HTML comment on the line before it::

    <!-- not-run: needs my_recsimu.pt, written by the command above -->

and shows up as a skip with that reason. A block that goes on from the one before it
(``<!-- continues: ... -->`` on the line before it) runs after that one, in the same
namespace. Blocks that are long by nature run with the
size-reducing substitutions of :data:`SUBSTITUTIONS`, written out below; a substitution
that no longer matches its block fails, so the reduced run cannot drift from the text.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "docs/clients.md", "docs/ope.md")
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(?P<reason>.+?)\s*-->")
CONTINUES = re.compile(r"<!--\s*continues\b")
SECONDS_PER_SNIPPET = 60  # an example that runs minutes without saying so is a bug here

# block (identified by a line it contains) -> (text as written, text run here): sizes only
SUBSTITUTIONS: dict[str, list[tuple[str, str]]] = {
    # 10,000 logged sessions: 200
    'logs = collect_logs(world, logging_policy("mix", world), n_sessions=10_000)': [
        ("n_sessions=10_000", "n_sessions=200"), ("n_sessions=1000", "n_sessions=200")],
    # cascading DQN, 300 iterations of 512 users (minutes): 3 iterations of 32 users
    "agent.fit(envs, CDQNTraining(iterations=300, num_users=512, progress=True))": [
        ("num_envs=512", "num_envs=32"), ("iterations=300, num_users=512",
                                           "iterations=3, num_users=32"),
        ("n_sessions=2000", "n_sessions=50")],
    # RaCT's 250 epochs: one
    "model = RaCT(data.num_items).fit(data.train, valid=data.valid)": [
        ("valid=data.valid)", "valid=data.valid, max_epochs=1, progress=False)")],
    # OPE on 1,000 logged sessions: 100 sessions
    'logs = collect_logs(world, logging_policy("mix", world), n_sessions=1_000,': [
        ("n_sessions=1_000", "n_sessions=100")],
    'logs = collect_logs(sim, logging_policy("mix", sim), n_sessions=1_000,': [
        ("n_sessions=1_000", "n_sessions=100"), ("n_bootstrap=200", "n_bootstrap=50")],
    # PPO on RecSimu-v0 for 2,048 steps: one update of 512
    'model.learn(2_048)  # the budgets below learn': [("model.learn(2_048)", "model.learn(512)")],
    # logs and roll-outs of the trained RecSimu model: 12 sessions of 25 steps
    "logs = collect_logs(users, RandomPolicy(users.num_items, 1), n_sessions=50": [
        ("n_sessions=50, max_steps=40", "n_sessions=12, max_steps=25"),
        ("n_sessions=100,", "n_sessions=20,")],
}


def _my_sessions(directory: Path) -> None:
    """The log ``load_logs("my_sessions.parquet")`` reads in README's Data section."""
    from recgym.data import LogDataset
    from recgym.envs.synthetic_mdp import SyntheticMDP, logging_policy
    from recgym.evaluation import collect_logs

    world = SyntheticMDP()
    LogDataset(collect_logs(world, logging_policy("random", world), 20),
               num_items=world.num_items).save(directory / "my_sessions.parquet")


# block -> what must exist in the (temporary) working directory before it runs
SETUP: dict[str, Callable[[Path], None]] = {
    'logs = load_logs("my_sessions.parquet")': _my_sessions,
}


@dataclass(frozen=True)
class Block:
    """One ```` ```python ```` block: where it is, its code, and how it is run."""

    document: str
    line: int
    code: str
    not_run: str | None
    continues: bool = False

    @property
    def id(self) -> str:
        """``document:line`` of the block's first code line."""
        return f"{self.document}:{self.line}"


def python_blocks(document: str) -> list[Block]:
    """The ```` ```python ```` blocks of a Markdown file, with their not-run reasons."""
    lines = (REPO_ROOT / document).read_text().splitlines()
    blocks, start = [], None
    for number, line in enumerate(lines):
        if start is None and line.strip() == "```python":
            start = number
        elif start is not None and line.strip() == "```":
            before = next((lines[i] for i in range(start - 1, -1, -1) if lines[i].strip()), "")
            match = NOT_RUN.search(before)
            blocks.append(Block(document, start + 1, "\n".join(lines[start + 1:number]) + "\n",
                                match["reason"] if match else None,
                                bool(CONTINUES.search(before))))
            start = None
    return blocks


BLOCKS = [block for document in DOCUMENTS for block in python_blocks(document)]


def _chain(block: Block) -> list[Block]:
    """The block and, if it continues one, the blocks it goes on from (first first)."""
    same = [other for other in BLOCKS if other.document == block.document]
    index = same.index(block)
    chain = [block]
    while chain[0].continues:
        index -= 1
        assert index >= 0, f"{block.id} continues no block"
        chain.insert(0, same[index])
    return chain


def _prepared(block: Block) -> str:
    code = block.code
    for key, pairs in SUBSTITUTIONS.items():
        if key in block.code:
            for old, new in pairs:
                code = code.replace(old, new)
    return code


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_snippet_runs(block: Block, tmp_path, monkeypatch):
    if block.not_run:
        pytest.skip(f"not-run: {block.not_run}")
    pytest.importorskip("stable_baselines3")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(REPO_ROOT))  # `agents` is imported from the checkout
    namespace = {"__name__": "__snippet__"}
    started = time.perf_counter()
    for part in _chain(block):
        for key, setup in SETUP.items():
            if key in part.code:
                setup(tmp_path)
        exec(compile(_prepared(part), part.id, "exec"), namespace)
    elapsed = time.perf_counter() - started
    assert elapsed < SECONDS_PER_SNIPPET, (
        f"{block.id} took {elapsed:.0f} s: make the example smaller or add a substitution")


def test_the_documents_have_snippets_and_every_skip_says_why():
    assert len(BLOCKS) >= 8
    for block in BLOCKS:
        assert block.not_run is None or len(block.not_run) > 10, block.id


@pytest.mark.parametrize("key", sorted(SUBSTITUTIONS))
def test_every_substitution_still_matches_its_block(key):
    matching = [block for block in BLOCKS if key in block.code]
    assert len(matching) == 1, f"{key!r} is in {len(matching)} blocks"
    code = matching[0].code
    assert any(old in code for old, _ in SUBSTITUTIONS[key])
    for old, _ in SUBSTITUTIONS[key]:
        assert old in code, f"{old!r} is no longer in {matching[0].id}: update SUBSTITUTIONS"


@pytest.mark.parametrize("key", sorted(SETUP))
def test_every_setup_still_matches_a_block(key):
    assert sum(key in block.code for block in BLOCKS) == 1
